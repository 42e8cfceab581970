use odeflow::solve::{solve, solve_split, SaveAt, SolveOptions};
use odeflow::systems::{BuiltinSystem, System, SystemField};
use odeflow::{Batch, Method};
fn main() {
    let sys = BuiltinSystem::from_name("linear").unwrap();
    for m in [
        "euler",
        "midpoint",
        "heun",
        "ralston",
        "rk3",
        "ralston3",
        "rk4",
        "rk4-38",
        "ssprk3",
        "heun-euler",
        "fehlberg2",
        "bosh3",
        "dopri5",
        "tsit5",
    ] {
        let method = Method::from_name(m).unwrap();
        let mut errs = vec![];
        for n in [10, 20, 40] {
            let y0 = Batch::from_row(&[1.0f64]);
            let sol = solve(
                &method,
                &mut SystemField(sys.clone()),
                &y0,
                &SolveOptions::steps(0.0, 1.0, n),
            )
            .unwrap();
            errs.push((sol.y_final.as_slice()[0] - (-1.0f64).exp()).abs());
        }
        println!(
            "{m}: errs {:?} ratios {:.2} {:.2}",
            errs,
            (errs[0] / errs[1]).log2(),
            (errs[1] / errs[2]).log2()
        );
    }
    for m in ["heun-euler", "fehlberg2", "bosh3", "dopri5", "tsit5"] {
        let method = Method::from_name(m).unwrap();
        for tol in [1e-4, 1e-6, 1e-8] {
            let y0 = Batch::from_row(&[1.0f64]);
            let opts = SolveOptions::adaptive(0.0, 1.0, tol, tol)
                .save(SaveAt::Times(vec![0.0, 0.25, 0.5, 1.0]));
            let sol = solve(&method, &mut SystemField(sys.clone()), &y0, &opts).unwrap();
            let e: f64 = sol
                .t
                .iter()
                .zip(&sol.y)
                .map(|(t, y)| (y.as_slice()[0] - (-t).exp()).abs())
                .fold(0.0, f64::max);
            println!("{m} tol {tol:e}: err {e:.3e} stats {:?}", sol.stats);
        }
    }
    let p = BuiltinSystem::from_name("pendulum").unwrap();
    for m in [
        "verlet",
        "verlet4",
        "verlet6",
        "symplectic-euler",
        "rk4",
        "implicit-midpoint",
    ] {
        let method = Method::from_name(m).unwrap();
        let y0 = Batch::from_row(&[0.0f64, 1.0]);
        let sol = solve_split(
            &method,
            &mut SystemField(p.clone()),
            &y0,
            &SolveOptions::fixed(0.0, 100.0, 0.05),
        )
        .unwrap();
        let e0 = p.invariants(&[0.0, 1.0])[0];
        let e1 = p.invariants(sol.y_final.as_slice())[0];
        println!("{m}: energy drift {:.3e} nfe {}", e1 - e0, sol.stats.nfe);
    }
}
