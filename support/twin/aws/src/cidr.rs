//! IPv4 CIDR blocks: parsing as EC2 validates them, containment and overlap.

use std::fmt;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    base: u32,
    prefix: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CidrError {
    /// Not `a.b.c.d/n` at all.
    Malformed,
    /// Host bits set (`10.1.0.1/16`): EC2 refuses these.
    NotNetworkAddress,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let (addr, prefix) = s.trim().split_once('/').ok_or(CidrError::Malformed)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| CidrError::Malformed)?;
        let prefix: u8 = prefix.parse().map_err(|_| CidrError::Malformed)?;
        if prefix > 32 {
            return Err(CidrError::Malformed);
        }
        let base = u32::from(addr);
        if base & !mask(prefix) != 0 {
            return Err(CidrError::NotNetworkAddress);
        }
        Ok(Cidr { base, prefix })
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Number of addresses in the block.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.base
    }

    /// Whether `inner` lies completely inside this block.
    pub fn covers(&self, inner: &Cidr) -> bool {
        inner.prefix >= self.prefix && inner.base & mask(self.prefix) == self.base
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.covers(other) || other.covers(self)
    }

    /// The address at `offset` from the start of the block (None past its end).
    pub fn nth(&self, offset: u64) -> Option<Ipv4Addr> {
        (offset < self.size()).then(|| Ipv4Addr::from(self.base.wrapping_add(offset as u32)))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl std::str::FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        Cidr::parse(s)
    }
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CidrError::Malformed => "not an IPv4 CIDR block (a.b.c.d/n)",
            CidrError::NotNetworkAddress => "host bits are set: not the block's network address",
        })
    }
}

impl std::error::Error for CidrError {}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let vpc = Cidr::parse("10.1.0.0/16").unwrap();
        assert_eq!(vpc.to_string(), "10.1.0.0/16");
        assert_eq!(vpc.size(), 65536);
        assert_eq!(Cidr::parse("10.1.0.1/16"), Err(CidrError::NotNetworkAddress));
        assert_eq!(Cidr::parse("10.1.0.0"), Err(CidrError::Malformed));
        assert_eq!(Cidr::parse("10.1.0.0/33"), Err(CidrError::Malformed));
        assert_eq!(Cidr::parse("banana/8"), Err(CidrError::Malformed));
    }

    #[test]
    fn containment_and_overlap() {
        let vpc = Cidr::parse("10.1.0.0/16").unwrap();
        let a = Cidr::parse("10.1.0.0/20").unwrap();
        let b = Cidr::parse("10.1.16.0/20").unwrap();
        let wide = Cidr::parse("10.1.0.0/19").unwrap();
        let outside = Cidr::parse("10.2.0.0/20").unwrap();
        assert!(vpc.covers(&a) && vpc.covers(&b) && !vpc.covers(&outside));
        assert!(!a.overlaps(&b));
        assert!(wide.overlaps(&a) && a.overlaps(&wide) && wide.overlaps(&b));
        assert!(a.contains("10.1.15.255".parse().unwrap()));
        assert!(!a.contains("10.1.16.0".parse().unwrap()));
        assert_eq!(a.nth(4), Some("10.1.0.4".parse().unwrap()));
        assert_eq!(a.nth(4096), None);
    }
}
