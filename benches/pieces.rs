//! Criterion benchmarks for hot-path pieces: path normalization, route decision, r-address check.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use xumm_gate::config::RouteConfig;

fn path(c: &mut Criterion) {
    c.bench_function("normalize: already normal", |b| b.iter(|| xumm_gate::path::normalize(black_box("/app/users/42/profile"))));
    c.bench_function("normalize: dot segments + escapes", |b| {
        b.iter(|| xumm_gate::path::normalize(black_box("/app/./users//42/%7Eprofile/../x")))
    });
}

fn routes(c: &mut Criterion) {
    let r = |p: &str, public| RouteConfig { path: p.into(), public, allow_accounts: vec![], allow_networks: vec![] };
    let table = xumm_gate::policy::RouteTable::new(&[r("/public", true), r("/admin", false), r("/api/v1", false), r("/static", true)]);
    c.bench_function("route decision (4 rules)", |b| b.iter(|| table.decide(black_box("/api/v1/users/42")).public));
}

fn account(c: &mut Criterion) {
    c.bench_function("r-address check", |b| {
        b.iter(|| xumm_gate::account::Account::parse(black_box("rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh")).is_ok())
    });
}

criterion_group!(benches, path, routes, account);
criterion_main!(benches);
