//! Map definitions chosen when the object is loaded. The hash maps that
//! hold policies' dispatch sets and entries take memory as entries are
//! written (`BPF_F_NO_PREALLOC`) where the kernel allocates safely from
//! tracing programs (`bpf_mem_alloc`, Linux 6.1), and there the hook array
//! becomes a hash map keyed by slot, so only the slots in use take memory,
//! and the executable cache becomes a hash map holding the live tasks only.
//! Before that, a tracing program using such a map makes the kernel print a
//! warning (WARN_ONCE) at its load, so there they stay preallocated, their
//! whole capacity charged from the start. aya (0.16) sets a map's size at
//! load but not its type or flags: the object's map definitions (the `maps`
//! section's `struct bpf_map_def`) are patched before it is loaded.

use object::{Object, ObjectSection, ObjectSymbol};

use crate::kernel_info::btf::KernelBtf;

/// `BPF_F_NO_PREALLOC`.
pub const NO_PREALLOC: u32 = 1;
/// `BPF_MAP_TYPE_HASH`, `BPF_MAP_TYPE_ARRAY`, `BPF_MAP_TYPE_LRU_HASH`.
const MAP_TYPE_HASH: u32 = 1;
const MAP_TYPE_ARRAY: u32 = 2;
const MAP_TYPE_LRU_HASH: u32 = 9;
/// `struct bpf_map_def`: type, key_size, value_size, max_entries and
/// map_flags, each a u32.
const DEF_WORDS: usize = 5;
const TYPE: usize = 0;
const FLAGS: usize = 4;

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

/// Arrays indexed by slot that become hash maps keyed by slot (allocated as
/// written): `HOOKS`, 4,096 hook slots of 2.2 kB each. The programs look a
/// slot up with the same helper call on either type, and treat a missing
/// slot as no hook.
pub const SLOT_TABLES: [&str; 1] = ["HOOKS"];

/// LRU caches whose entries also go when their task exits, which become
/// hash maps holding the live tasks: `TASK_EXE`, 8,192 preallocated
/// entries (2.7 MB; full, a new task goes uncached and a selector reads its
/// executable from `mm->exe_file`, as on any miss: slower, never wrong),
/// and `EXEC_CREDS`, 16,384 (1.6 MB; full, a new process has no reference
/// and matches no change selector, as one Tetragon has not seen).
pub const EXIT_CLEARED_CACHES: [&str; 2] = ["TASK_EXE", "EXEC_CREDS"];

/// The kernel allocates map elements safely from tracing programs: it has
/// the BPF memory allocator (Linux 6.1).
pub fn allocates_on_demand(btf: Option<&KernelBtf>) -> bool {
    btf.is_some_and(|b| b.member_offset("bpf_mem_alloc", &[]).is_ok())
}

/// `object` with its policy maps allocated on demand: `ON_DEMAND` flagged
/// `BPF_F_NO_PREALLOC`, `SLOT_TABLES` and `EXIT_CLEARED_CACHES` turned
/// into such hash maps.
pub fn allocated_on_demand(object: &[u8]) -> Result<Vec<u8>, String> {
    let maps: Vec<&str> = ON_DEMAND
        .iter()
        .chain(&SLOT_TABLES)
        .chain(&EXIT_CLEARED_CACHES)
        .copied()
        .collect();
    patch_defs(object, &maps, |name, def| {
        let built_as = if SLOT_TABLES.contains(&name) {
            Some((MAP_TYPE_ARRAY, "an array"))
        } else if EXIT_CLEARED_CACHES.contains(&name) {
            Some((MAP_TYPE_LRU_HASH, "an LRU hash map"))
        } else {
            None
        };
        if let Some((kind, what)) = built_as {
            if def[TYPE] != kind {
                return Err(format!("map {name} is not {what} (type {})", def[TYPE]));
            }
            def[TYPE] = MAP_TYPE_HASH;
        }
        def[FLAGS] |= NO_PREALLOC;
        Ok(())
    })
}

/// `object` with `edit` applied to the definitions of `maps`.
fn patch_defs(
    object: &[u8],
    maps: &[&str],
    edit: impl Fn(&str, &mut [u32; DEF_WORDS]) -> Result<(), String>,
) -> Result<Vec<u8>, String> {
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
        let len = (4 * DEF_WORDS) as u64;
        if symbol.address() + len > size {
            return Err(format!(
                "map {name}: its definition ends past the `maps` section"
            ));
        }
        let at = usize::try_from(start + symbol.address()).map_err(|e| e.to_string())?;
        let bytes = patched
            .get_mut(at..at + 4 * DEF_WORDS)
            .ok_or_else(|| format!("map {name}: its definition ends past the object"))?;
        let (words, _) = bytes.as_chunks_mut::<4>();
        let mut def = [0u32; DEF_WORDS];
        for (word, chunk) in def.iter_mut().zip(words.iter()) {
            *word = u32::from_le_bytes(*chunk);
        }
        edit(name, &mut def)?;
        for (word, chunk) in def.iter().zip(words.iter_mut()) {
            *chunk = word.to_le_bytes();
        }
    }
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use object::{Object, ObjectSection, ObjectSymbol};

    use super::{
        allocated_on_demand, patch_defs, EXIT_CLEARED_CACHES, NO_PREALLOC, ON_DEMAND, SLOT_TABLES,
    };

    /// Word `word` of map `name`'s definition.
    fn def_word(object: &[u8], name: &str, word: usize) -> u32 {
        let file = object::File::parse(object).unwrap();
        let section = file.section_by_name("maps").unwrap();
        let symbol = file.symbols().find(|s| s.name() == Ok(name)).unwrap();
        let data = section.data().unwrap();
        let at = symbol.address() as usize + 4 * word;
        u32::from_le_bytes(data[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn only_the_named_maps_are_changed() {
        let object = crate::sensors::kernel::BPF_OBJECT;
        assert!(!object.is_empty(), "built with TETRAGOND_SKIP_BPF=1");
        let patched = allocated_on_demand(object).unwrap();
        for name in ON_DEMAND {
            assert_eq!(def_word(&patched, name, 4), NO_PREALLOC, "{name}");
            assert_eq!(def_word(object, name, 4), 0, "{name}");
            assert_eq!(
                def_word(&patched, name, 0),
                def_word(object, name, 0),
                "{name}"
            );
        }
        for (name, built_as) in SLOT_TABLES
            .iter()
            .map(|n| (n, 2))
            .chain(EXIT_CLEARED_CACHES.iter().map(|n| (n, 9)))
        {
            assert_eq!(def_word(object, name, 0), built_as, "{name}'s built type");
            assert_eq!(
                def_word(&patched, name, 0),
                1,
                "{name} is loaded as a hash map"
            );
            assert_eq!(def_word(&patched, name, 4), NO_PREALLOC, "{name}");
            // Key, value and capacity stay.
            for word in 1..4 {
                assert_eq!(def_word(&patched, name, word), def_word(object, name, word));
            }
        }
        // The rate limits' LRU and the ring buffer are left as they were.
        for name in ["RATE_LIMITS", "EVENTS"] {
            for word in 0..5 {
                assert_eq!(def_word(&patched, name, word), def_word(object, name, word));
            }
        }
        assert!(patch_defs(object, &["NO_SUCH_MAP"], |_, _| Ok(())).is_err());
    }
}
