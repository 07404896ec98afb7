//! The lab's fault injectors: the programs of `guardian-lab-ebpf` (built by build.rs next to the
//! daemon's object), attached to interfaces of namespaces the lab created. The daemon never
//! loads this object.
//!
//! Every attachment is a bpf_link owned by an [`Injector`] guard: dropping the
//! guard drops the `Ebpf` object, which detaches and unloads the program (and a killed lab
//! leaves nothing either: links die with their file descriptors).
//!
//! Interfaces are looked up in the calling thread's network namespace: call these from a thread
//! that has joined the interface's namespace (see [`crate::topology::Netns::within`]).
use aya::{
    maps::Array,
    programs::{tc::TcAttachOptions, LinkOrder, SchedClassifier, TcAttachType},
    Ebpf,
};

mod qdisc;

pub use qdisc::ensure_fq;

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/guardian-lab-ebpf"));

/// Program names, as `bpftool prog show` lists them (cut to 15 bytes by the kernel).
pub const PROGRAMS: [&str; 3] = ["glab_loss", "glab_icmp_drop", "glab_delay"];

#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("this guardian-lab was built without its eBPF object (AYA_BUILD_SKIP): rebuild it with `cargo build --release -p guardian-lab`")]
    NoObject,
    #[error("loading the lab's eBPF object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("attaching {program} to {iface}: {source}")]
    Attach {
        program: &'static str,
        iface: String,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("setting {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("{0}")]
    Qdisc(String),
}

/// Which side of an interface a tcx program sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

/// An attached injector; detached when dropped.
pub struct Injector {
    ebpf: Ebpf,
    program: &'static str,
}

impl std::fmt::Debug for Injector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injector")
            .field("program", &self.program)
            .finish()
    }
}

fn load() -> Result<Ebpf, InjectError> {
    if OBJECT.is_empty() {
        return Err(InjectError::NoObject);
    }
    Ok(Ebpf::load(OBJECT)?)
}

fn attach_tc(program: &'static str, iface: &str, dir: Direction) -> Result<Injector, InjectError> {
    let mut ebpf = load()?;
    let err = |source| InjectError::Attach {
        program,
        iface: iface.to_string(),
        source,
    };
    let prog: &mut SchedClassifier = ebpf
        .program_mut(program)
        .ok_or(aya::programs::ProgramError::NotLoaded)
        .map_err(err)?
        .try_into()
        .map_err(err)?;
    prog.load().map_err(err)?;
    let t = match dir {
        Direction::Ingress => TcAttachType::Ingress,
        Direction::Egress => TcAttachType::Egress,
    };
    // The link stays in the program's link list and is detached when `ebpf` drops.
    prog.attach_with_options(iface, t, TcAttachOptions::TcxOrder(LinkOrder::default()))
        .map_err(err)?;
    Ok(Injector { ebpf, program })
}

impl Injector {
    /// Random loss of IP packets at `iface`'s ingress or egress with probability `p` (0..=1).
    pub fn loss(iface: &str, dir: Direction, p: f64) -> Result<Injector, InjectError> {
        let mut inj = attach_tc("glab_loss", iface, dir)?;
        inj.set_loss(p)?;
        Ok(inj)
    }

    /// Drops ICMP fragmentation-needed and ICMPv6 packet-too-big at `iface`.
    pub fn icmp_drop(iface: &str, dir: Direction) -> Result<Injector, InjectError> {
        attach_tc("glab_icmp_drop", iface, dir)
    }

    /// Delays every packet leaving `iface` by `delay` (earliest departure time; puts an `fq`
    /// qdisc on `iface`, which honours it).
    pub fn delay(iface: &str, delay: std::time::Duration) -> Result<Injector, InjectError> {
        ensure_fq(iface)?;
        let mut inj = attach_tc("glab_delay", iface, Direction::Egress)?;
        let ns = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        inj.set("DELAY", ns)?;
        Ok(inj)
    }

    /// Changes the loss probability of a `loss` injector (0 stops the loss).
    pub fn set_loss(&mut self, p: f64) -> Result<(), InjectError> {
        self.set("LOSS", loss_threshold(p))
    }

    fn set<V: aya::Pod>(&mut self, map: &'static str, v: V) -> Result<(), InjectError> {
        let err = |source| InjectError::Map { map, source };
        let m = self
            .ebpf
            .map_mut(map)
            .ok_or(aya::maps::MapError::InvalidName {
                name: map.to_string(),
            })
            .map_err(err)?;
        let mut a: Array<_, V> = Array::try_from(m).map_err(err)?;
        a.set(0, v, 0).map_err(err)
    }

    pub fn program(&self) -> &'static str {
        self.program
    }
}

/// A probability as the program's threshold: `prandom < threshold` drops.
pub fn loss_threshold(p: f64) -> u32 {
    if p.is_nan() || p <= 0.0 {
        0
    } else if p >= 1.0 {
        u32::MAX
    } else {
        (p * f64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_probability_maps_to_the_full_u32_range() {
        assert_eq!(loss_threshold(0.0), 0);
        assert_eq!(loss_threshold(-1.0), 0);
        assert_eq!(loss_threshold(f64::NAN), 0);
        assert_eq!(loss_threshold(1.0), u32::MAX);
        assert_eq!(loss_threshold(2.0), u32::MAX);
        let half = loss_threshold(0.5);
        assert!((half as i64 - (u32::MAX / 2) as i64).abs() <= 1);
    }
}
