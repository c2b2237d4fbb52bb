//! `vistaflow cache ls|gc|verify`.

use super::{EXIT_FAILED, EXIT_INVALID};
use crate::cache::Store;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use vistaflow_nodes::text::human_bytes;

#[derive(Args)]
pub struct CacheArgs {
    /// The cache folder (default: .vistaflow/cache in the current folder).
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    #[command(subcommand)]
    pub op: CacheOp,
}

#[derive(Subcommand)]
pub enum CacheOp {
    /// List entries, most recently used first.
    Ls,
    /// Remove least recently used entries until the cache is at most SIZE (e.g. 20G, 500M).
    Gc {
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: u64,
    },
    /// Re-hash every entry; corrupt ones are removed and listed.
    Verify,
}

pub fn cache(a: CacheArgs) -> i32 {
    let dir = a.dir.unwrap_or_else(|| PathBuf::from(".vistaflow/cache"));
    if !dir.exists() {
        eprintln!("error: no cache at {} (give --dir DIR; a workflow's cache is `settings.cache`, default .vistaflow/cache beside it)", dir.display());
        return EXIT_INVALID;
    }
    let store = match Store::open(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    match a.op {
        CacheOp::Ls => {
            let entries = store.list();
            let total: u64 = entries.iter().map(|e| e.bytes).sum();
            outln!(
                "{:<14} {:<14} {:<16} {:<10} {:>10}",
                "id",
                "node",
                "kind",
                "port",
                "size"
            );
            for e in &entries {
                outln!(
                    "{:<14} {:<14} {:<16} {:<10} {:>10}",
                    e.id.short(12),
                    e.node,
                    e.kind,
                    e.port,
                    human_bytes(e.bytes)
                );
            }
            outln!(
                "{} entries, {} in {}",
                entries.len(),
                human_bytes(total),
                dir.display()
            );
            0
        }
        CacheOp::Gc { max_size } => match store.gc(max_size) {
            Ok(r) => {
                outln!(
                    "removed {} entries ({}), {} leftover files, {} sink records and {} file \
                     digests; kept {} entries ({})",
                    r.removed_entries,
                    human_bytes(r.freed_bytes),
                    r.removed_garbage,
                    r.removed_records,
                    r.removed_memos,
                    r.kept_entries,
                    human_bytes(r.kept_bytes)
                );
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_FAILED
            }
        },
        CacheOp::Verify => match store.verify() {
            Ok(r) => {
                for (id, why) in &r.corrupt {
                    outln!("corrupt (removed): {} {why}", id.short(12));
                }
                outln!(
                    "checked {} entries ({}): {} corrupt; {} leftover files (removed by `cache gc`)",
                    r.checked,
                    human_bytes(r.ok_bytes),
                    r.corrupt.len(),
                    r.garbage_files
                );
                if r.is_clean() {
                    0
                } else {
                    EXIT_FAILED
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_FAILED
            }
        },
    }
}

/// `20G`, `500M`, `1.5GB`, `1024` (bytes); powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_uppercase();
    let t = t
        .strip_suffix("IB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        Some('T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a size; write e.g. 20G or 500M"))?;
    if n.is_nan() || n < 0.0 {
        return Err(format!("`{s}` is not a size"));
    }
    Ok((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("20G").unwrap(), 20 << 30);
        assert_eq!(parse_size("500MB").unwrap(), 500 << 20);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("lots").is_err());
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
