fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    std::fs::write(out.join("builtins.rs"), "pub static BUILTINS: &[(&str, &[u8])] = &[];\n").unwrap();
}
