//! CPU lists as the `--cpus` flags take them, and pinning the current thread to one CPU.

/// A list of CPU ids, parsed from `0`, `0-3` or `0,2,4-5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

impl std::str::FromStr for CpuList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_cpu_list(s).map(CpuList)
    }
}

/// Parses a CPU list such as `0`, `0-3` or `0,2,4-5`.
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>, String> {
    let bad = || format!("bad CPU list {list:?}: use e.g. 0, 0-3 or 0,2");
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((lo, hi)) => {
                let lo: usize = lo.trim().parse().map_err(|_| bad())?;
                let hi: usize = hi.trim().parse().map_err(|_| bad())?;
                if lo > hi {
                    return Err(bad());
                }
                cpus.extend(lo..=hi);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    if cpus.is_empty() {
        return Err(bad());
    }
    Ok(cpus)
}

/// Pins the current thread to `cpu`; false if the OS refused (the thread then runs unpinned).
pub fn pin_current_thread(cpu: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
}

/// The CPU ids of this machine, in order (empty if they cannot be read).
pub fn machine_cpus() -> Vec<usize> {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|core| core.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0").unwrap(), vec![0]);
        assert_eq!(parse_cpu_list("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_cpu_list("0,2, 4-5").unwrap(), vec![0, 2, 4, 5]);
        for bad in ["", "a", "3-1", "1-", ","] {
            assert!(parse_cpu_list(bad).is_err(), "{bad:?}");
        }
        assert_eq!("0-1".parse::<CpuList>().unwrap(), CpuList(vec![0, 1]));
    }
}
