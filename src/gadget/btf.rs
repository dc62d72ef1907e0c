//! A reader for the BTF type section of a BPF object: enough to find the gadget's markers,
//! parameters and event layouts. Pure code, no syscalls.

use std::collections::HashMap;

use super::GadgetError;

const BTF_MAGIC: u16 = 0xeb9f;

pub type TypeId = u32;

/// How many qualifiers, typedefs or nested arrays a walk follows before giving up: real objects
/// need a handful; a hostile one can make a cycle.
const MAX_CHAIN: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Void,
    Int {
        size: u32,
        signed: bool,
        is_bool: bool,
        is_char: bool,
    },
    /// A pointer to this type.
    Ptr(TypeId),
    Array {
        elem: TypeId,
        len: u32,
    },
    Struct {
        size: u32,
        members: Vec<Member>,
    },
    Union {
        size: u32,
        members: Vec<Member>,
    },
    Enum {
        size: u32,
        signed: bool,
        values: Vec<(String, i64)>,
    },
    Fwd,
    Typedef(TypeId),
    Volatile(TypeId),
    Const(TypeId),
    Restrict(TypeId),
    TypeTag(TypeId),
    Func,
    FuncProto,
    Var {
        ty: TypeId,
    },
    Datasec {
        size: u32,
        vars: Vec<SecVar>,
    },
    Float {
        size: u32,
    },
    DeclTag,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    pub ty: TypeId,
    pub bit_offset: u32,
    pub bitfield_size: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SecVar {
    pub ty: TypeId,
    pub offset: u32,
    pub size: u32,
}

#[derive(Debug, Clone)]
pub struct Type {
    pub name: String,
    pub kind: Kind,
}

/// Every type of one BTF blob, indexed by type id (id 0 is `void`).
#[derive(Debug, Clone)]
pub struct Btf {
    types: Vec<Type>,
    by_name: HashMap<String, Vec<TypeId>>,
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Result<u32, GadgetError> {
        let bytes = self
            .data
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| GadgetError::Btf("type section is truncated".into()))?;
        self.pos += 4;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

fn read_u32(data: &[u8], at: usize) -> Result<u32, GadgetError> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| GadgetError::Btf("header is truncated".into()))
}

fn string_at(strings: &[u8], off: u32) -> Result<String, GadgetError> {
    let tail = strings
        .get(off as usize..)
        .ok_or_else(|| GadgetError::Btf(format!("string offset {off} out of range")))?;
    let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
    Ok(String::from_utf8_lossy(&tail[..end]).into_owned())
}

impl Btf {
    /// Parses a little-endian `.BTF` section.
    pub fn parse(data: &[u8]) -> Result<Self, GadgetError> {
        if data.len() < 24 || u16::from_le_bytes([data[0], data[1]]) != BTF_MAGIC {
            return Err(GadgetError::Btf("bad magic (not little-endian BTF)".into()));
        }
        let hdr_len = read_u32(data, 4)? as usize;
        let type_off = read_u32(data, 8)? as usize;
        let type_len = read_u32(data, 12)? as usize;
        let str_off = read_u32(data, 16)? as usize;
        let str_len = read_u32(data, 20)? as usize;
        let section = |off: usize, len: usize| {
            data.get(hdr_len + off..hdr_len + off + len)
                .ok_or_else(|| GadgetError::Btf("section out of range".into()))
        };
        let type_data = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?;

        let mut types = vec![Type {
            name: String::new(),
            kind: Kind::Void,
        }];
        let mut r = Reader {
            data: type_data,
            pos: 0,
        };
        while r.pos < type_data.len() {
            let name = string_at(strings, r.u32()?)?;
            let info = r.u32()?;
            let size_or_type = r.u32()?;
            let vlen = info & 0xffff;
            let kind_flag = info >> 31 == 1;
            let kind = match (info >> 24) & 0x1f {
                1 => {
                    let enc = r.u32()?;
                    let encoding = (enc >> 24) & 0xf;
                    Kind::Int {
                        size: size_or_type,
                        signed: encoding & 1 != 0,
                        is_char: encoding & 2 != 0,
                        is_bool: encoding & 4 != 0,
                    }
                }
                2 => Kind::Ptr(size_or_type),
                3 => {
                    let elem = r.u32()?;
                    let _index = r.u32()?;
                    let len = r.u32()?;
                    Kind::Array { elem, len }
                }
                k @ (4 | 5) => {
                    let mut members = Vec::with_capacity(vlen as usize);
                    for _ in 0..vlen {
                        let name = string_at(strings, r.u32()?)?;
                        let ty = r.u32()?;
                        let off = r.u32()?;
                        let (bit_offset, bitfield_size) = if kind_flag {
                            (off & 0xff_ffff, off >> 24)
                        } else {
                            (off, 0)
                        };
                        members.push(Member {
                            name,
                            ty,
                            bit_offset,
                            bitfield_size,
                        });
                    }
                    if k == 4 {
                        Kind::Struct {
                            size: size_or_type,
                            members,
                        }
                    } else {
                        Kind::Union {
                            size: size_or_type,
                            members,
                        }
                    }
                }
                6 => {
                    let mut values = Vec::with_capacity(vlen as usize);
                    for _ in 0..vlen {
                        let name = string_at(strings, r.u32()?)?;
                        let raw = r.u32()?;
                        let val = if kind_flag {
                            raw as i32 as i64
                        } else {
                            raw as i64
                        };
                        values.push((name, val));
                    }
                    Kind::Enum {
                        size: size_or_type,
                        signed: kind_flag,
                        values,
                    }
                }
                7 => Kind::Fwd,
                8 => Kind::Typedef(size_or_type),
                9 => Kind::Volatile(size_or_type),
                10 => Kind::Const(size_or_type),
                11 => Kind::Restrict(size_or_type),
                12 => Kind::Func,
                13 => {
                    for _ in 0..vlen {
                        r.u32()?;
                        r.u32()?;
                    }
                    Kind::FuncProto
                }
                14 => {
                    let _linkage = r.u32()?;
                    Kind::Var { ty: size_or_type }
                }
                15 => {
                    let mut vars = Vec::with_capacity(vlen as usize);
                    for _ in 0..vlen {
                        let ty = r.u32()?;
                        let offset = r.u32()?;
                        let size = r.u32()?;
                        vars.push(SecVar { ty, offset, size });
                    }
                    Kind::Datasec {
                        size: size_or_type,
                        vars,
                    }
                }
                16 => Kind::Float { size: size_or_type },
                17 => {
                    r.u32()?;
                    Kind::DeclTag
                }
                18 => Kind::TypeTag(size_or_type),
                19 => {
                    let mut values = Vec::with_capacity(vlen as usize);
                    for _ in 0..vlen {
                        let name = string_at(strings, r.u32()?)?;
                        let lo = r.u32()? as u64;
                        let hi = r.u32()? as u64;
                        values.push((name, ((hi << 32) | lo) as i64));
                    }
                    Kind::Enum {
                        size: size_or_type,
                        signed: kind_flag,
                        values,
                    }
                }
                other => return Err(GadgetError::Btf(format!("unknown BTF kind {other}"))),
            };
            types.push(Type { name, kind });
        }

        let mut by_name: HashMap<String, Vec<TypeId>> = HashMap::new();
        for (id, t) in types.iter().enumerate() {
            if !t.name.is_empty() {
                by_name
                    .entry(t.name.clone())
                    .or_default()
                    .push(id as TypeId);
            }
        }
        Ok(Btf { types, by_name })
    }

    pub fn get(&self, id: TypeId) -> Option<&Type> {
        self.types.get(id as usize)
    }

    pub fn types(&self) -> impl Iterator<Item = (TypeId, &Type)> {
        self.types.iter().enumerate().map(|(i, t)| (i as TypeId, t))
    }

    /// The first struct with this name.
    pub fn struct_by_name(&self, name: &str) -> Option<TypeId> {
        self.by_name
            .get(name)?
            .iter()
            .copied()
            .find(|&id| matches!(self.types[id as usize].kind, Kind::Struct { .. }))
    }

    /// The datasec with this name (`.rodata`, `.bss`, ...).
    pub fn datasec(&self, name: &str) -> Option<&[SecVar]> {
        self.by_name
            .get(name)?
            .iter()
            .find_map(|&id| match &self.types[id as usize].kind {
                Kind::Datasec { vars, .. } => Some(vars.as_slice()),
                _ => None,
            })
    }

    /// Skips const/volatile/restrict/type tags, but not typedefs. A chain longer than
    /// `MAX_CHAIN` (only a cycle, in a hostile object, is) stops on a qualifier, which no caller
    /// takes for a concrete type.
    pub fn skip_qualifiers(&self, mut id: TypeId) -> TypeId {
        for _ in 0..MAX_CHAIN {
            match self.get(id).map(|t| &t.kind) {
                Some(Kind::Const(n) | Kind::Volatile(n) | Kind::Restrict(n) | Kind::TypeTag(n)) => {
                    id = *n
                }
                _ => break,
            }
        }
        id
    }

    /// Skips qualifiers and typedefs down to the concrete type.
    pub fn resolve(&self, mut id: TypeId) -> TypeId {
        for _ in 0..MAX_CHAIN {
            id = self.skip_qualifiers(id);
            match self.get(id).map(|t| &t.kind) {
                Some(Kind::Typedef(n)) => id = *n,
                _ => break,
            }
        }
        id
    }

    /// The names of the typedefs crossed on the way to the concrete type, outermost first.
    pub fn typedef_chain(&self, mut id: TypeId) -> Vec<&str> {
        let mut names = Vec::new();
        for _ in 0..MAX_CHAIN {
            id = self.skip_qualifiers(id);
            match self.get(id) {
                Some(Type {
                    name,
                    kind: Kind::Typedef(n),
                }) => {
                    names.push(name.as_str());
                    id = *n;
                }
                _ => break,
            }
        }
        names
    }

    /// Size in bytes of a type, when it has one (none for one past 4 GiB, or arrays nested
    /// deeper than `MAX_CHAIN`, as an array of itself is).
    pub fn size_of(&self, id: TypeId) -> Option<u32> {
        self.size_within(id, MAX_CHAIN)
    }

    fn size_within(&self, id: TypeId, depth: usize) -> Option<u32> {
        let id = self.resolve(id);
        match &self.get(id)?.kind {
            Kind::Int { size, .. }
            | Kind::Struct { size, .. }
            | Kind::Union { size, .. }
            | Kind::Enum { size, .. }
            | Kind::Float { size } => Some(*size),
            Kind::Ptr(_) => Some(8),
            Kind::Array { elem, len } => self
                .size_within(*elem, depth.checked_sub(1)?)?
                .checked_mul(*len),
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a tiny BTF blob by hand: `typedef unsigned int gadget_uid; struct ev { gadget_uid uid; char comm[16]; }`.
    pub(crate) fn sample() -> Vec<u8> {
        let mut strings = b"\0unsigned int\0gadget_uid\0ev\0uid\0comm\0char\0".to_vec();
        strings.push(0);
        let off = |s: &str| {
            let pos = strings_find(b"\0unsigned int\0gadget_uid\0ev\0uid\0comm\0char\0", s);
            pos as u32
        };
        let mut t = Vec::new();
        let mut push = |v: u32| t.extend_from_slice(&v.to_le_bytes());
        // 1: unsigned int
        push(off("unsigned int"));
        push(1 << 24);
        push(4);
        push(32);
        // 2: typedef gadget_uid -> 1
        push(off("gadget_uid"));
        push(8 << 24);
        push(1);
        // 3: char
        push(off("char"));
        push(1 << 24);
        push(1);
        push((2 << 24) | 8);
        // 4: char[16]
        push(0);
        push(3 << 24);
        push(0);
        push(3);
        push(1);
        push(16);
        // 5: struct ev { uid; comm }
        push(off("ev"));
        push((4 << 24) | 2);
        push(20);
        push(off("uid"));
        push(2);
        push(0);
        push(off("comm"));
        push(4);
        push(32);
        let mut blob = Vec::new();
        blob.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        blob.push(1);
        blob.push(0);
        for v in [
            24u32,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            blob.extend_from_slice(&v.to_le_bytes());
        }
        blob.extend_from_slice(&t);
        blob.extend_from_slice(&strings);
        blob
    }

    fn strings_find(hay: &[u8], s: &str) -> usize {
        let needle: Vec<u8> = [b"\0".as_slice(), s.as_bytes(), b"\0"].concat();
        hay.windows(needle.len())
            .position(|w| w == needle.as_slice())
            .map(|p| p + 1)
            .unwrap_or(0)
    }

    #[test]
    fn parses_struct_with_typedef_member() {
        let btf = Btf::parse(&sample()).expect("parse");
        let ev = btf.struct_by_name("ev").expect("struct ev");
        let Kind::Struct { size, members } = &btf.get(ev).expect("type").kind else {
            panic!("not a struct")
        };
        assert_eq!(*size, 20);
        assert_eq!(members[0].name, "uid");
        assert_eq!(btf.typedef_chain(members[0].ty), vec!["gadget_uid"]);
        assert_eq!(members[1].bit_offset, 32);
        assert_eq!(btf.size_of(members[1].ty), Some(16));
    }

    /// A blob of raw type words (no strings but the empty one).
    pub(crate) fn blob_of(types: &[u32]) -> Vec<u8> {
        let mut blob = vec![0x9f, 0xeb, 1, 0];
        let len = (types.len() * 4) as u32;
        for v in [24, 0, len, len, 1] {
            blob.extend_from_slice(&u32::to_le_bytes(v));
        }
        for t in types {
            blob.extend_from_slice(&t.to_le_bytes());
        }
        blob.push(0);
        blob
    }

    /// Found by the `btf` fuzz target and the property tests (issue 17): a qualifier that is its
    /// own target hung `skip_qualifiers`, an array of itself overflowed the stack in `size_of`
    /// and an array of 2^32 ints overflowed its size.
    #[test]
    fn cycles_and_huge_arrays_end() {
        #[rustfmt::skip]
        let types = [
            0, 10 << 24, 1,              // 1: const → 1
            0, 3 << 24, 0, 2, 2, 4,      // 2: array of 2 (itself)
            0, 1 << 24, 4, 32,           // 3: int
            0, 3 << 24, 0, 3, 3, u32::MAX, // 4: int[u32::MAX]
        ];
        let btf = Btf::parse(&blob_of(&types)).expect("parse");
        let _ = btf.skip_qualifiers(1);
        let _ = btf.resolve(1);
        assert_eq!(btf.size_of(1), None);
        assert_eq!(btf.size_of(2), None);
        assert_eq!(btf.size_of(4), None);
        assert_eq!(btf.size_of(3), Some(4));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(b"not btf at all, definitely not").is_err());
        let mut blob = sample();
        blob.truncate(40);
        assert!(Btf::parse(&blob).is_err());
    }
}
