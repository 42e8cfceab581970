use std::path::Path;

use crate::data::csv::{parse_csv, read_csv, read_pairs_csv, write_csv, write_pairs_csv};
use crate::data::npy::{
    npy_bytes, npy_bytes_shaped, parse_npy, parse_npy_shaped, read_npy, read_pairs_npy, write_npy,
    write_pairs_npy,
};
use crate::data::{DataError, PairDataset};
use crate::state::Batch;

fn awkward() -> Batch<f64> {
    let vals = [
        0.1,
        -2.5e-300,
        std::f64::consts::PI,
        1e300,
        -0.0,
        123_456_789.123_456_79,
        1.0 / 3.0,
        7.0,
    ];
    Batch::from_vec(4, 2, vals.to_vec()).unwrap()
}

/// An NPY file with the given header dict, version and data bytes.
fn npy_with(dict: &str, major: u8, data: &[u8]) -> Vec<u8> {
    let mut v = b"\x93NUMPY".to_vec();
    v.extend_from_slice(&[major, 0]);
    let header = format!("{dict}\n");
    if major == 1 {
        v.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        v.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

fn le_f64(vals: &[f64]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn npy_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let b = awkward();
    let p = dir.path().join("b.npy");
    write_npy(&p, &b).unwrap();
    assert_eq!(read_npy::<f64>(&p).unwrap(), b);
    let bytes = std::fs::read(&p).unwrap();
    // Version 1.0, data aligned to 64 bytes, the header numpy writes.
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0);
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(
        header.starts_with("{'descr': '<f8', 'fortran_order': False, 'shape': (4, 2), }")
            && header.ends_with(" \n")
    );
    assert_eq!(bytes.len(), 10 + hlen + 64);
    // f32 stays f32 on disk and round-trips exactly; f32 data read as f64 widen exactly.
    let b32 = b.cast::<f32>();
    write_npy(&p, &b32).unwrap();
    assert!(std::fs::read(&p).unwrap().windows(3).any(|w| w == b"<f4"));
    assert_eq!(read_npy::<f32>(&p).unwrap(), b32);
    assert_eq!(read_npy::<f64>(&p).unwrap(), b32.cast::<f64>());
    // Pairs: one n × (dx + dy) array.
    let x = Batch::from_vec(3, 2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let y = Batch::from_vec(3, 1, vec![-1.0, -2.0, -3.0]).unwrap();
    let pairs = PairDataset::new(x, y).unwrap();
    write_pairs_npy(&p, &pairs).unwrap();
    assert_eq!(read_npy::<f64>(&p).unwrap().row(1), &[3.0, 4.0, -2.0]);
    let back = read_pairs_npy::<f64>(&p, Some(2)).unwrap();
    assert_eq!((back.x(), back.y()), (pairs.x(), pairs.y()));
    assert!(
        read_pairs_npy::<f64>(&p, None).is_err(),
        "3 columns cannot be halved"
    );
    // Empty batch.
    write_npy(&p, &Batch::<f64>::zeros(0, 5)).unwrap();
    assert_eq!(read_npy::<f64>(&p).unwrap().cols(), 5);
}

#[test]
fn npy_arrays_of_any_rank_round_trip_with_their_shape() {
    let b = awkward();
    let p = Path::new("nd.npy");
    for shape in [vec![8], vec![4, 2], vec![2, 2, 2], vec![1, 2, 1, 4]] {
        let bytes = npy_bytes_shaped(&shape, &b);
        let (got_shape, got) = parse_npy_shaped::<f64>(&bytes, p).unwrap();
        assert_eq!(got_shape, shape);
        assert_eq!(got.rows(), shape[0]);
        assert_eq!(got.as_slice(), b.as_slice());
    }
    let one_d = std::str::from_utf8(&npy_bytes_shaped(&[8], &b)[10..70])
        .unwrap()
        .to_string();
    assert!(one_d.contains("'shape': (8,)"), "{one_d}");
    let e = parse_npy_shaped::<f64>(
        &npy_with(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
            1,
            &le_f64(&[1.0]),
        ),
        p,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("scalar"), "{e}");
}

#[test]
fn npy_header_variants() {
    let path = Path::new("v.npy");
    let data = le_f64(&[1.0, 2.0, 3.0]);
    // Version 2.0, double quotes, no trailing comma, Python 2 long sizes, key order.
    let v2 = npy_with(
        "{\"shape\": (3L, 1L), \"fortran_order\": False, \"descr\": \"<f8\"}",
        2,
        &data,
    );
    assert_eq!(
        parse_npy::<f64>(&v2, path).unwrap().as_slice(),
        &[1.0, 2.0, 3.0]
    );
    // 1-D arrays are columns.
    let v1 = npy_with(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
        1,
        &data,
    );
    let b = parse_npy::<f64>(&v1, path).unwrap();
    assert_eq!((b.rows(), b.cols()), (3, 1));
    // A large array gets a version-1.0 header; npy_bytes of a wide shape parses back.
    let wide = Batch::<f32>::zeros(2, 70_000);
    assert_eq!(parse_npy::<f32>(&npy_bytes(&wide), path).unwrap(), wide);
}

#[test]
fn npy_errors() {
    let path = Path::new("bad.npy");
    let data = le_f64(&[1.0, 2.0, 3.0, 4.0]);
    let err = |bytes: &[u8]| parse_npy::<f64>(bytes, path).unwrap_err();
    let dict = |descr: &str, fortran: &str, shape: &str| {
        format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}")
    };
    let e = err(b"PK\x03\x04 this is a zip");
    assert!(
        matches!(e, DataError::BadMagic { .. }) && e.to_string().contains("bad.npy"),
        "{e}"
    );
    let e = err(&npy_with(&dict("<i8", "False", "(2, 2)"), 1, &data)).to_string();
    assert!(
        e.contains("unsupported dtype '<i8'") && e.contains("bad.npy"),
        "{e}"
    );
    let e = err(&npy_with(&dict(">f8", "False", "(2, 2)"), 1, &data)).to_string();
    assert!(e.contains("big-endian"), "{e}");
    let e = err(&npy_with(&dict("<f8", "True", "(2, 2)"), 1, &data)).to_string();
    assert!(e.contains("Fortran order"), "{e}");
    let e = err(&npy_with(&dict("<f8", "False", "(2, 3)"), 1, &data));
    match e {
        DataError::Truncated { expected, got, .. } => assert_eq!(expected - got, 16),
        e => panic!("{e}"),
    }
    let e = err(&npy_with(&dict("<f8", "False", "(1, 3)"), 1, &data));
    assert!(matches!(e, DataError::TrailingData { .. }), "{e}");
    let e = err(&npy_with(&dict("<f8", "False", "(1, 2, 2)"), 1, &data)).to_string();
    assert!(e.contains("not 1-D or 2-D"), "{e}");
    let e = err(&npy_with(
        "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,), }",
        1,
        &data,
    ))
    .to_string();
    assert!(e.contains("malformed NPY header"), "{e}");
    let e = err(&npy_with("{'descr': '<f8', 'shape': (2, 2), }", 1, &data)).to_string();
    assert!(e.contains("fortran_order"), "{e}");
    let e = err(&npy_with(&dict("<f8", "False", "(2, 2)"), 7, &data)).to_string();
    assert!(e.contains("version 7.0"), "{e}");
    let full = npy_with(&dict("<f8", "False", "(2, 2)"), 1, &data);
    assert!(matches!(err(&full[..20]), DataError::Truncated { .. }));
    let e = read_npy::<f64>("/nonexistent/x.npy")
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/x.npy"), "{e}");
}

#[test]
fn csv_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.csv");
    let b = awkward();
    let names = vec!["a".to_string(), "b".to_string()];
    write_csv(&p, &names, &b).unwrap();
    let (h, back) = read_csv::<f64>(&p).unwrap();
    assert_eq!((h, &back), (names.clone(), &b));
    let b32 = b.cast::<f32>();
    write_csv(&p, &names, &b32).unwrap();
    assert_eq!(read_csv::<f32>(&p).unwrap().1, b32);
    // Pairs keep their column names.
    let x = Batch::from_vec(2, 2, vec![0.5, -1.25, 3.0, 4.0]).unwrap();
    let y = Batch::from_vec(2, 2, vec![0.25, 1.0, 1e-7, -4.0]).unwrap();
    let pairs = PairDataset::with_names(x, y, vec!["p".into(), "q".into()]).unwrap();
    write_pairs_csv(&p, &pairs).unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(
        text.starts_with("p,q,p_T,q_T\n0.5,-1.25,0.25,1\n"),
        "{text}"
    );
    assert_eq!(read_pairs_csv::<f64>(&p, None).unwrap(), pairs);
    // NumPy savetxt header, CRLF, spaces, quotes, comments and blank lines.
    let text = "# p,\"q\"\r\n 1.5 , 2\r\n\r\n# note\r\n-3,nan\r\n";
    let (h, b) = parse_csv::<f64>(text, Path::new("np.csv")).unwrap();
    assert_eq!(h, vec!["p", "q"]);
    assert_eq!((b.rows(), b.row(0)), (2, &[1.5, 2.0][..]));
    assert!(b.row(1)[1].is_nan());
    assert!(write_csv(&p, &["a,b".to_string(), "c".to_string()], &b).is_err());
    assert!(write_csv(&p, &names[..1], &b).is_err());
}

#[test]
fn csv_errors_name_line_and_column() {
    let path = Path::new("data/pairs.csv");
    let e = parse_csv::<f64>("p,q,p_T\n1,2,3\n4,x5,6\n", path).unwrap_err();
    match &e {
        DataError::Csv {
            line,
            column,
            column_name,
            ..
        } => assert_eq!((*line, *column, column_name.as_str()), (3, 2, "q")),
        e => panic!("{e}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("data/pairs.csv")
            && msg.contains("line 3, column 2 ('q')")
            && msg.contains("'x5' is not a number"),
        "{msg}"
    );
    let e = parse_csv::<f64>("a,b\n1,\n", path).unwrap_err().to_string();
    assert!(e.contains("line 2, column 2 ('b'): empty cell"), "{e}");
    let e = parse_csv::<f64>("a,b,c\n1,2\n", path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("column 3 ('c')") && e.contains("2 cells but the header has 3"),
        "{e}"
    );
    let e = parse_csv::<f64>("a,b\n1,2,3\n", path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("beyond the header") && e.contains("3 cells"),
        "{e}"
    );
    let e = parse_csv::<f64>("\n\n", path).unwrap_err().to_string();
    assert!(e.contains("no header"), "{e}");
    let e = parse_csv::<f32>("a\n1e60\n", path);
    assert!(e.is_ok(), "overflow to inf is a number, as in numpy");
}
