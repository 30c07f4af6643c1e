# Sourced by the benchmarks that drive `incubator serve` with examples/load.rs: builds both in release,
# names them (`target`, `incubator`), brings in serve.sh and says which machine measures.
cargo build -q --release --bin incubator
cargo build -q --release -p csirt-incubator --example load
target="${CARGO_TARGET_DIR:-target}/release"
incubator="$target/incubator"
source examples/common/serve.sh
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
