//! `inventory`: apply a list of ledger operations from the command line and print the
//! snapshot, e.g. `inventory receive:bolt:10 reserve:bolt:4`.

use inventory_service::Ledger;

fn main() {
    let mut ledger = Ledger::new();
    for op in std::env::args().skip(1) {
        let parts: Vec<&str> = op.split(':').collect();
        let result = match parts[..] {
            ["receive", item, n] => n.parse().map(|n| ledger.receive(item, n)).map_err(|e| e.to_string()),
            ["reserve", item, n] => match n.parse() {
                Ok(n) => ledger.reserve(item, n).map_err(|e| e.to_string()),
                Err(e) => Err(format!("{e}")),
            },
            ["ship", item, n] => match n.parse() {
                Ok(n) => ledger.ship(item, n).map_err(|e| e.to_string()),
                Err(e) => Err(format!("{e}")),
            },
            _ => Err(format!("unknown operation `{op}` (use receive|reserve|ship:ITEM:N)")),
        };
        if let Err(e) = result {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
    print!("{}", ledger.snapshot());
}
