fn main() {
    std::process::exit(vistaflow::cli::main());
}
