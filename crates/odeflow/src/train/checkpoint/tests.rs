use std::fs;

use super::*;

fn sample(dtype: &str) -> Checkpoint {
    let opt = OptimizerState {
        t: 3,
        m: vec![0.1f32 as f64, -0.2f32 as f64, f32::MIN_POSITIVE as f64],
        v: vec![1e-8f32 as f64, 3.0, 0.0],
    };
    // Every value exact in the run's dtype, as the trainer's are; subnormals and -0 too.
    let mut opt = opt;
    let mut params = vec![
        0.1f32 as f64,
        (1.0f32 / 3.0) as f64,
        -0.0,
        7.5e-39f32 as f64,
    ];
    if dtype == "f64" {
        opt.m[2] = f64::MIN_POSITIVE;
        params[0] = 0.1;
        params[1] = 1.0 / 3.0;
        params[3] = 5e-324;
    }
    Checkpoint::new(
        42,
        dtype,
        params,
        opt,
        serde_json::json!({"h": 0.1, "events": [1, 2]}),
        serde_json::json!({"model": "x"}),
    )
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn round_trip_is_bit_exact_in_f32_and_f64_and_deterministic() {
    for dtype in ["f32", "f64"] {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/checkpoint.safetensors");
        let c = sample(dtype);
        c.save(&p).unwrap();
        let back = Checkpoint::load(&p).unwrap();
        assert_eq!(back, c);
        assert_eq!(bits(&back.params), bits(&c.params), "{dtype}");
        assert_eq!(bits(&back.optimizer.m), bits(&c.optimizer.m), "{dtype}");
        assert_eq!(bits(&back.optimizer.v), bits(&c.optimizer.v), "{dtype}");
        // The same state gives the same bytes.
        let bytes = fs::read(&p).unwrap();
        assert_eq!(bytes, c.to_bytes(&p).unwrap());
        back.save(&p).unwrap();
        assert_eq!(fs::read(&p).unwrap(), bytes);
        // The tensors are stored in the run's dtype, the scalars as metadata.
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let want = if dtype == "f32" {
            Dtype::F32
        } else {
            Dtype::F64
        };
        for name in [PARAMS_TENSOR, MOMENT1_TENSOR, MOMENT2_TENSOR] {
            assert_eq!(st.tensor(name).unwrap().dtype(), want, "{name}");
        }
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = header.metadata().as_ref().unwrap();
        assert_eq!(meta["iteration"], "42");
        assert_eq!(meta["optimizer.t"], "3");
        assert!(meta["checksum"].starts_with("sha256:"), "{meta:?}");
        // No temporary file is left beside it.
        let names: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("checkpoint.safetensors")]
        );
    }
}

#[test]
fn sgd_state_with_an_empty_second_moment_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.safetensors");
    let mut c = sample("f64");
    c.optimizer.v.clear();
    c.hook = serde_json::Value::Null;
    c.save(&p).unwrap();
    assert_eq!(Checkpoint::load(&p).unwrap(), c);
}

/// `bytes` with the first occurrence of `from` replaced by `to` (of the same length).
fn edit(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("the pattern occurs");
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

fn load_err(p: &Path, bytes: &[u8]) -> String {
    fs::write(p, bytes).unwrap();
    let e = Checkpoint::load(p).unwrap_err().to_string();
    assert!(e.contains(&p.display().to_string()), "{e}");
    e
}

#[test]
fn truncated_edited_and_foreign_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("checkpoint.safetensors");
    let c = sample("f32");
    let good = c.to_bytes(&p).unwrap();

    let e = load_err(&p, &good[..good.len() / 2]);
    assert!(e.contains("corrupt or truncated"), "{e}");
    let e = load_err(&p, &good[..5]);
    assert!(e.contains("corrupt or truncated"), "{e}");

    // An edited number in the metadata or in a tensor.
    let e = load_err(
        &p,
        &edit(&good, b"\"iteration\":\"42\"", b"\"iteration\":\"43\""),
    );
    assert!(e.contains("checksum") && e.contains("sha256:"), "{e}");
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 1;
    let e = load_err(&p, &flipped);
    assert!(e.contains("checksum"), "{e}");

    // A tensor renamed: the checksum no longer matches either.
    let e = load_err(&p, &edit(&good, b"optimizer.m", b"optimizer.x"));
    assert!(e.contains("checksum"), "{e}");

    // Internally consistent files that odeflow did not write: a missing tensor, a wrong
    // dtype, exported weights.
    let mut missing = TensorFile::new(FileDtype::F32);
    missing
        .tensors
        .insert(PARAMS_TENSOR.into(), Tensor::new(vec![1], vec![1.0]));
    let e = load_err(&p, &resign(missing.clone(), &c));
    assert!(e.contains("missing tensor `optimizer.m`"), "{e}");
    let mut wrong = c.clone();
    wrong.dtype = "f64".into();
    let mut bytes = wrong.to_bytes(&p).unwrap();
    bytes = edit(&bytes, b"\"dtype\":\"f64\"", b"\"dtype\":\"f32\"");
    let e = load_err(&p, &rehash(&bytes));
    assert!(e.contains("is F64") && e.contains("dtype is f32"), "{e}");
    let weights = missing.to_bytes().unwrap();
    let e = load_err(&p, &weights);
    assert!(e.contains("not an odeflow checkpoint"), "{e}");
    let e = load_err(&p, b"");
    assert!(e.contains("corrupt or truncated"), "{e}");

    let e = Checkpoint::load(&dir.path().join("missing.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.safetensors"), "{e}");
}

/// `file` with the metadata of `like` and a valid checksum.
fn resign(mut file: TensorFile, like: &Checkpoint) -> Vec<u8> {
    let (_, header) = SafeTensors::read_metadata(&like.to_bytes(Path::new("x")).unwrap()).unwrap();
    file.metadata = header.metadata().clone().unwrap().into_iter().collect();
    rehash(&file.to_bytes().unwrap())
}

/// `bytes` with its checksum recomputed (what a careful forger would do).
fn rehash(bytes: &[u8]) -> Vec<u8> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
    let meta: BTreeMap<String, String> = header.metadata().clone().unwrap().into_iter().collect();
    let mut hash = ContentHash::new();
    hash.metadata(&meta);
    let mut names = st.names();
    names.sort_unstable();
    for name in names {
        let v = st.tensor(name).unwrap();
        hash.tensor(name, &v.dtype().to_string(), v.shape(), v.data());
    }
    // Re-encode with the new checksum, keeping each tensor's own dtype.
    let views: Vec<_> = st.tensors();
    let mut meta = meta;
    meta.insert(CHECKSUM_KEY.into(), hash.finish());
    let map: std::collections::HashMap<String, String> = meta.into_iter().collect();
    safetensors::serialize(views, Some(map)).unwrap()
}

#[test]
fn legacy_json_checkpoints_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("checkpoint.json");
    let mut c = sample("f64");
    let json = legacy::to_json(&c);
    fs::write(&p, &json).unwrap();
    let back = Checkpoint::load(&p).unwrap();
    c.version = legacy::LEGACY_VERSION;
    assert_eq!(back, c);
    assert_eq!(bits(&back.params), bits(&c.params));
    let text = String::from_utf8(json).unwrap();
    let e = load_err(
        &p,
        text.replace("\"iteration\":42", "\"iteration\":43")
            .as_bytes(),
    );
    assert!(e.contains("checksum") && e.contains("crc32:"), "{e}");
    let e = load_err(&p, &text.as_bytes()[..text.len() / 2]);
    assert!(e.contains("corrupt or truncated"), "{e}");
}
