//! Map flags chosen when the object is loaded. The hash maps that hold
//! policies' dispatch sets and entries take memory as entries are written
//! (`BPF_F_NO_PREALLOC`) where the kernel allocates safely from tracing
//! programs (`bpf_mem_alloc`, Linux 6.1). Before that, a tracing program
//! using such a map makes the kernel print a warning (WARN_ONCE) at its
//! load, so there they stay preallocated, their whole capacity charged
//! from the start. aya (0.16) sets a map's size at load but not its flags:
//! the object's map definitions (the `maps` section's `struct
//! bpf_map_def`) are patched before it is loaded.

use object::{Object, ObjectSection, ObjectSymbol};

use crate::kernel_info::btf::KernelBtf;

/// `BPF_F_NO_PREALLOC`.
pub const NO_PREALLOC: u32 = 1;
/// `map_flags` in `struct bpf_map_def` (after type, key, value and
/// max_entries, each a u32).
const MAP_FLAGS_OFFSET: u64 = 16;

/// The hash maps of dispatch sets and policy entries: allocated as they are
/// written where the kernel allows it.
pub const ON_DEMAND: [&str; 8] = [
    "HOOK_LISTS",
    "BINARY_GATES",
    "KPROBE_SITES",
    "EVENT_INFO",
    "ARG_SETS",
    "BINARY_SETS",
    "BINARY_IDS",
    "SUBSTRINGS",
];

/// The kernel allocates map elements safely from tracing programs: it has
/// the BPF memory allocator (Linux 6.1).
pub fn allocates_on_demand(btf: Option<&KernelBtf>) -> bool {
    btf.is_some_and(|b| b.member_offset("bpf_mem_alloc", &[]).is_ok())
}

/// `object` with `flags` added to the definitions of `maps`.
pub fn with_flags(object: &[u8], maps: &[&str], flags: u32) -> Result<Vec<u8>, String> {
    let file = object::File::parse(object).map_err(|e| format!("parsing the BPF object: {e}"))?;
    let section = file
        .section_by_name("maps")
        .ok_or("the BPF object has no `maps` section")?;
    let (start, size) = section
        .file_range()
        .ok_or("the BPF object's `maps` section has no data")?;
    let mut patched = object.to_vec();
    for name in maps {
        let symbol = file
            .symbols()
            .find(|s| s.name() == Ok(name) && s.section_index() == Some(section.index()))
            .ok_or_else(|| format!("map {name} missing from the BPF object"))?;
        let offset = symbol.address() + MAP_FLAGS_OFFSET;
        if offset + 4 > size {
            return Err(format!(
                "map {name}: its definition ends past the `maps` section"
            ));
        }
        let at = usize::try_from(start + offset).map_err(|e| e.to_string())?;
        let field = patched
            .get_mut(at..at + 4)
            .ok_or_else(|| format!("map {name}: its definition ends past the object"))?;
        let current = u32::from_le_bytes([field[0], field[1], field[2], field[3]]);
        field.copy_from_slice(&(current | flags).to_le_bytes());
    }
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use object::{Object, ObjectSection, ObjectSymbol};

    use super::{with_flags, NO_PREALLOC, ON_DEMAND};

    fn flags_of(object: &[u8], name: &str) -> u32 {
        let file = object::File::parse(object).unwrap();
        let section = file.section_by_name("maps").unwrap();
        let symbol = file.symbols().find(|s| s.name() == Ok(name)).unwrap();
        let data = section.data().unwrap();
        let at = (symbol.address() + 16) as usize;
        u32::from_le_bytes(data[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn only_the_named_maps_are_flagged() {
        let object = crate::sensors::kernel::BPF_OBJECT;
        assert!(!object.is_empty(), "built with TETRAGOND_SKIP_BPF=1");
        let patched = with_flags(object, &ON_DEMAND, NO_PREALLOC).unwrap();
        for name in ON_DEMAND {
            assert_eq!(flags_of(&patched, name), NO_PREALLOC, "{name}");
            assert_eq!(flags_of(object, name), 0, "{name}");
        }
        // An LRU map and the ring buffer are left as they were.
        assert_eq!(flags_of(&patched, "TASK_EXE"), flags_of(object, "TASK_EXE"));
        assert_eq!(flags_of(&patched, "EVENTS"), flags_of(object, "EVENTS"));
        assert!(with_flags(object, &["NO_SUCH_MAP"], NO_PREALLOC).is_err());
    }
}
