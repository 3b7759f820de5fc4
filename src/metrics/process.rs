//! The `process_*` metrics Prometheus' own clients export (CPU time, memory, file
//! descriptors, start time), read from `/proc` on each scrape. Linux only: elsewhere
//! the series are left out.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::TypedMetric;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::fmt;

/// Clock ticks per second in `/proc/self/stat`. The kernel reports these times in
/// `USER_HZ`, which is 100 on every architecture Linux runs on today; Prometheus' Go
/// client hard-codes it the same way rather than calling `sysconf(_SC_CLK_TCK)`.
const USER_HZ: f64 = 100.0;

/// Encodes this process's `process_*` series; a value that cannot be read is left out.
#[derive(Debug)]
pub(super) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let stat = read("/proc/self/stat").and_then(|s| Stat::parse(&s));
        if let Some(stat) = &stat {
            encode(
                &mut encoder,
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                ConstCounter::new((stat.utime_ticks + stat.stime_ticks) as f64 / USER_HZ),
            )?;
        }
        if let Some(kb) = read("/proc/self/status").and_then(|s| status_kb(&s, "VmRSS")) {
            encode(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                ConstGauge::new(kb.saturating_mul(1024)),
            )?;
        }
        if let Some(stat) = &stat {
            encode(
                &mut encoder,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                ConstGauge::new(stat.vsize_bytes),
            )?;
        }
        if let Some(open) = open_fds() {
            encode(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors.",
                ConstGauge::new(open),
            )?;
        }
        if let Some(max) = read("/proc/self/limits").and_then(|s| max_open_files(&s)) {
            encode(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                ConstGauge::new(max),
            )?;
        }
        let boot = read("/proc/stat").and_then(|s| boot_time(&s));
        if let (Some(stat), Some(boot)) = (&stat, boot) {
            encode(
                &mut encoder,
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                ConstGauge::new(boot as f64 + stat.start_ticks as f64 / USER_HZ),
            )?;
        }
        Ok(())
    }
}

fn encode<M: EncodeMetric + TypedMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: M,
) -> Result<(), fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, M::TYPE)?)
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The fields of `/proc/self/stat` that the metrics use (proc(5)).
#[derive(Debug, PartialEq)]
struct Stat {
    utime_ticks: u64,
    stime_ticks: u64,
    /// Since boot.
    start_ticks: u64,
    vsize_bytes: u64,
}

impl Stat {
    fn parse(stat: &str) -> Option<Self> {
        // The command name (field 2) is in parentheses and may hold spaces and
        // parentheses, so the fields are counted from the last `)`: `rest[0]` is field 3.
        let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |n: usize| rest.get(n - 3)?.parse::<u64>().ok();
        Some(Self {
            utime_ticks: field(14)?,
            stime_ticks: field(15)?,
            start_ticks: field(22)?,
            vsize_bytes: field(23)?,
        })
    }
}

/// A `Name:   1234 kB` line of `/proc/self/status`, in kB.
fn status_kb(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// The soft limit on open files from `/proc/self/limits`; `None` when unlimited.
fn max_open_files(limits: &str) -> Option<u64> {
    limits.lines().find_map(|line| {
        let soft = line
            .strip_prefix("Max open files")?
            .split_whitespace()
            .next()?;
        soft.parse().ok()
    })
}

/// The `btime` line of `/proc/stat`: when the system booted, in seconds since the epoch.
fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())
}

/// Entries of `/proc/self/fd` (the one that reads it included, as in Prometheus' Go
/// client).
fn open_fds() -> Option<u64> {
    let count = std::fs::read_dir("/proc/self/fd").ok()?.count();
    u64::try_from(count).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with spaces and a `)` of its own.
        let line = "4242 (sd (x) y) S 1 4242 4242 0 -1 4194560 2500 0 3 0 \
                    731 209 0 0 20 0 9 0 123456 1300000000 20000 18446744073709551615 \
                    1 1 0 0 0 0 0 4096 17922 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                utime_ticks: 731,
                stime_ticks: 209,
                start_ticks: 123456,
                vsize_bytes: 1_300_000_000,
            })
        );
        assert_eq!(Stat::parse("4242 (seriesd) S 1 2"), None);
        assert_eq!(Stat::parse(""), None);
    }

    #[test]
    fn status_values_are_read_in_kb() {
        let status = "Name:\tseriesd\nVmPeak:\t  200000 kB\nVmSize:\t  190000 kB\n\
                      VmRSS:\t   51234 kB\nRssAnon:\t   40000 kB\n";
        assert_eq!(status_kb(status, "VmRSS"), Some(51234));
        assert_eq!(status_kb(status, "VmSize"), Some(190000));
        assert_eq!(status_kb(status, "VmSwap"), None);
        // A kernel thread has no memory lines at all.
        assert_eq!(status_kb("Name:\tkthreadd\n", "VmRSS"), None);
    }

    #[test]
    fn the_soft_open_files_limit_is_read() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files     \n";
        assert_eq!(max_open_files(unlimited), None);
    }

    #[test]
    fn boot_time_comes_from_btime() {
        let stat = "cpu  1 2 3 4\nintr 5\nctxt 6\nbtime 1733300000\nprocesses 7\n";
        assert_eq!(boot_time(stat), Some(1_733_300_000));
        assert_eq!(boot_time("cpu  1 2 3 4\n"), None);
    }

    #[test]
    fn this_process_reads_plausibly() {
        let stat = read("/proc/self/stat")
            .and_then(|s| Stat::parse(&s))
            .unwrap();
        assert!(stat.vsize_bytes > 0);
        let rss = read("/proc/self/status")
            .and_then(|s| status_kb(&s, "VmRSS"))
            .unwrap();
        assert!(rss > 0);
        // Standard input, output and error, and the directory being read.
        assert!(open_fds().unwrap() >= 3);
        assert!(
            read("/proc/self/limits")
                .and_then(|s| max_open_files(&s))
                .unwrap()
                >= 3
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let boot = read("/proc/stat").and_then(|s| boot_time(&s)).unwrap() as f64;
        let start = boot + stat.start_ticks as f64 / USER_HZ;
        assert!(boot < start && start <= now + 1.0, "{boot} {start} {now}");
    }
}
