//! Kernel objects read as records of their members (a BPF program, map,
//! perf event, kernel module): where each member is on the running kernel,
//! from BTF, and where it goes in the record (`tetragond_ebpf::*Info`).
//! One kernel loop copies any record, so a new object is a table here,
//! not kernel code.

use std::mem::offset_of;

use tetragond_ebpf::{
    record_kind, BpfMapInfo, BpfProgInfo, ModuleInfo, PerfEventInfo, RecordPiece, NO_HOP,
    RECORD_LEN, RECORD_PIECES,
};

use super::btf::{BtfError, KernelBtf};

/// The pieces of one record, as the kernel side reads them.
pub type RecordLayout = [RecordPiece; RECORD_PIECES];

/// Where a member is: in the object, or behind one of its pointers.
enum From {
    Own(&'static [&'static str]),
    /// `pointer` (a member of the object) points at a struct `to`, whose
    /// `member` is read.
    Behind {
        pointer: &'static str,
        to: &'static str,
        member: &'static [&'static str],
    },
}

/// One member of a record.
struct Piece {
    from: From,
    /// Where it goes in the record, and how many bytes it takes there.
    dst: usize,
    size: usize,
    /// The member is a `char *`: the string it points at is copied.
    string: bool,
    /// Kernels may lack it (a config option): then the record keeps 0.
    optional: bool,
}

const fn own(path: &'static [&'static str], dst: usize, size: usize) -> Piece {
    Piece {
        from: From::Own(path),
        dst,
        size,
        string: false,
        optional: false,
    }
}

/// The object (a struct or union name) and its pieces, per `record_kind`.
fn spec(record: usize) -> Option<(&'static str, Vec<Piece>)> {
    let prog_name = offset_of!(BpfProgInfo, name);
    let module_name = offset_of!(ModuleInfo, name);
    Some(match record {
        record_kind::BPF_ATTR => (
            "bpf_attr",
            vec![
                own(&["prog_type"], offset_of!(BpfProgInfo, prog_type), 4),
                own(&["insn_cnt"], offset_of!(BpfProgInfo, insn_cnt), 4),
                own(&["prog_name"], prog_name, 16),
            ],
        ),
        record_kind::BPF_PROG => (
            "bpf_prog",
            vec![
                own(&["type"], offset_of!(BpfProgInfo, prog_type), 4),
                own(&["len"], offset_of!(BpfProgInfo, insn_cnt), 4),
                Piece {
                    from: From::Behind {
                        pointer: "aux",
                        to: "bpf_prog_aux",
                        member: &["name"],
                    },
                    ..own(&[], prog_name, 16)
                },
            ],
        ),
        record_kind::BPF_MAP => (
            "bpf_map",
            vec![
                own(&["map_type"], offset_of!(BpfMapInfo, map_type), 4),
                own(&["key_size"], offset_of!(BpfMapInfo, key_size), 4),
                own(&["value_size"], offset_of!(BpfMapInfo, value_size), 4),
                own(&["max_entries"], offset_of!(BpfMapInfo, max_entries), 4),
                own(&["name"], offset_of!(BpfMapInfo, name), 16),
            ],
        ),
        record_kind::PERF_EVENT => (
            "perf_event",
            vec![
                own(&["attr", "type"], offset_of!(PerfEventInfo, event_type), 4),
                own(&["attr", "config"], offset_of!(PerfEventInfo, config), 8),
                own(
                    &["attr", "config2"],
                    offset_of!(PerfEventInfo, probe_offset),
                    8,
                ),
                // `kprobe_func`, a pointer into the caller's memory.
                Piece {
                    string: true,
                    ..own(
                        &["attr", "config1"],
                        offset_of!(PerfEventInfo, kprobe_func),
                        RECORD_LEN - offset_of!(PerfEventInfo, kprobe_func),
                    )
                },
            ],
        ),
        record_kind::MODULE => (
            "module",
            vec![
                own(&["name"], module_name, 56),
                own(&["taints"], offset_of!(ModuleInfo, taints), 8),
            ],
        ),
        record_kind::LOAD_INFO => (
            "load_info",
            vec![
                Piece {
                    string: true,
                    ..own(&["name"], module_name, 56)
                },
                Piece {
                    from: From::Behind {
                        pointer: "mod",
                        to: "module",
                        member: &["taints"],
                    },
                    ..own(&[], offset_of!(ModuleInfo, taints), 8)
                },
                // CONFIG_MODULE_SIG
                Piece {
                    optional: true,
                    ..own(&["sig_ok"], offset_of!(ModuleInfo, sig_ok), 1)
                },
            ],
        ),
        _ => return None,
    })
}

/// How record `record` (`record_kind::*`) is read on the kernel `btf`
/// describes; an error names what this kernel lacks.
pub fn record_layout(btf: &KernelBtf, record: usize) -> Result<RecordLayout, BtfError> {
    let (object, pieces) =
        spec(record).ok_or_else(|| BtfError::Field(format!("no record kind {record}")))?;
    let mut layout = [RecordPiece::default(); RECORD_PIECES];
    // (`every_record_fits_its_pieces_and_its_bytes` holds each spec to
    // RECORD_PIECES.)
    for (slot, piece) in layout.iter_mut().zip(&pieces) {
        match read_piece(btf, object, piece) {
            Ok(p) => *slot = p,
            Err(_) if piece.optional => {}
            Err(e) => return Err(e),
        }
    }
    Ok(layout)
}

/// Every record's layout; a record this kernel cannot read has none (the
/// compile refuses its types, with [`record_layout`]'s error).
pub fn record_layouts(btf: &KernelBtf) -> [RecordLayout; record_kind::KINDS] {
    let mut all = [[RecordPiece::default(); RECORD_PIECES]; record_kind::KINDS];
    for (record, layout) in all.iter_mut().enumerate() {
        if let Ok(l) = record_layout(btf, record) {
            *layout = l;
        }
    }
    all
}

fn read_piece(btf: &KernelBtf, object: &str, piece: &Piece) -> Result<RecordPiece, BtfError> {
    let (hop, member) = match &piece.from {
        From::Own(path) => (NO_HOP, btf.member_offset(object, path)?),
        From::Behind {
            pointer,
            to,
            member,
        } => {
            let hop = btf.member_offset(object, &[pointer])?;
            if hop.size != 8 {
                return Err(BtfError::Field(format!(
                    "{object}.{pointer} is not a pointer"
                )));
            }
            (narrow(hop.offset)?, btf.member_offset(to, member)?)
        }
    };
    let want = if piece.string { 8 } else { piece.size as u32 };
    if member.size != want {
        return Err(BtfError::Field(format!(
            "a member of struct {object} is {} bytes on this kernel, where {want} are read",
            member.size
        )));
    }
    debug_assert!(piece.dst + piece.size <= RECORD_LEN && piece.size < 128);
    Ok(RecordPiece {
        hop,
        offset: narrow(member.offset)?,
        size: piece.size as u8,
        string: u8::from(piece.string),
        dst: piece.dst as u8,
        present: 1,
    })
}

fn narrow(offset: u32) -> Result<u16, BtfError> {
    u16::try_from(offset)
        .map_err(|_| BtfError::Field(format!("member offset {offset} is past 65535 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On this machine's kernel: the BPF objects and the perf event have
    /// their records, each member where BTF says.
    #[test]
    fn bpf_objects_and_perf_events_have_records_here() {
        let btf = KernelBtf::from_sys_fs().expect("this test needs /sys/kernel/btf/vmlinux");
        for record in [
            record_kind::BPF_ATTR,
            record_kind::BPF_PROG,
            record_kind::BPF_MAP,
            record_kind::PERF_EVENT,
        ] {
            record_layout(&btf, record).unwrap_or_else(|e| panic!("record {record}: {e}"));
        }
        let map = record_layout(&btf, record_kind::BPF_MAP).expect("bpf_map");
        let name = btf.member_offset("bpf_map", &["name"]).expect("name");
        assert_eq!(map[4].offset as u32, name.offset);
        assert_eq!(map[4].dst as usize, offset_of!(BpfMapInfo, name));
        let prog = record_layout(&btf, record_kind::BPF_PROG).expect("bpf_prog");
        let aux = btf.member_offset("bpf_prog", &["aux"]).expect("aux");
        assert_eq!((prog[2].hop as u32, prog[2].present), (aux.offset, 1));
        let perf = record_layout(&btf, record_kind::PERF_EVENT).expect("perf_event");
        assert_eq!(perf[3].string, 1);
        assert!(perf.iter().skip(4).all(|p| p.present == 0));
    }

    #[test]
    fn every_record_fits_its_pieces_and_its_bytes() {
        for record in 0..record_kind::KINDS {
            let (_, pieces) = spec(record).expect("every kind has a spec");
            assert!(pieces.len() <= RECORD_PIECES, "record {record}");
            assert!(pieces
                .iter()
                .all(|p| p.dst + p.size <= RECORD_LEN && p.size < 128));
        }
    }

    /// A kernel without the object has no record, and says so.
    #[test]
    fn a_missing_object_is_named() {
        let btf = KernelBtf::from_sys_fs().expect("this test needs /sys/kernel/btf/vmlinux");
        let err = read_piece(&btf, "no_such_object", &own(&["x"], 0, 4)).unwrap_err();
        assert!(err.to_string().contains("no_such_object"), "{err}");
        assert!(record_layout(&btf, record_kind::KINDS).is_err());
    }
}
