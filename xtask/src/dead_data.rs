//! Zeroes the texts in a wasm's data that nothing refers to any more.
//!
//! LLVM lays out every constant the Rust code can reach; binaryen then removes code that turns
//! out dead (wasm-bindgen's closure shims, integer formatting behind the trapping panic
//! handler), but cannot remove data: it cannot know what an address computed at run time
//! reads. What stays are texts no instruction names: an allocation-failure message, a closure
//! error, the two-digit table of integer formatting, about 150 B that cost about 300 B of gzip
//! in every build (text compresses far less than zeros).
//!
//! The test is conservative. A reference is any `i32.const`, either half of an `i64.const`
//! (LLVM stores a pointer and a length with one 64-bit constant), any load or store offset, and
//! any 4 bytes of the data read as a number, at every offset (a static holding a pointer: a
//! panic location naming its file, the table LLVM makes of a `match` that returns texts),
//! whether or not anything still reads that static. A run of printable ASCII that no
//! reference points into is zeroed; anything the walk does not understand (a memory
//! instruction it does not know, a passive or computed data segment) leaves the file as it is.

use std::collections::BTreeSet;

use wasmparser::{DataKind, Operator, Parser, Payload};

use crate::Result;

/// The shortest run of text considered.
const MIN_RUN: usize = 4;

/// Zeroes the unreferenced texts of `wasm` in place; returns how many bytes (0 when the module
/// has something the walk does not understand).
pub fn zero_unreferenced(wasm: &mut [u8]) -> Result<usize> {
    let Some(module) = walk(wasm)? else {
        return Ok(0);
    };
    let mut live = module.refs;
    live.extend(module.words);
    let mut zeroed = 0;
    for seg in &module.segments {
        let bytes = wasm
            .get(seg.file..seg.file + seg.len)
            .ok_or("a data segment lies outside the file")?;
        for (start, end) in text_runs(bytes) {
            let (from, to) = (seg.addr + start as u32, seg.addr + end as u32);
            if live.range(from..to).next().is_none() {
                wasm[seg.file + start..seg.file + end].fill(0);
                zeroed += end - start;
            }
        }
    }
    Ok(zeroed)
}

/// An active data segment: its address in memory, its bytes' place in the file.
struct Segment {
    addr: u32,
    file: usize,
    len: usize,
}

/// What [`walk`] found.
struct Module {
    /// Constants and offsets of the code, globals and element segments.
    refs: BTreeSet<u32>,
    segments: Vec<Segment>,
    /// Every 4-byte value of the data, at every offset.
    words: Vec<u32>,
}

/// The references and data segments of `wasm`; `None` when it has something this walk does
/// not understand.
fn walk(wasm: &[u8]) -> Result<Option<Module>> {
    let mut refs = BTreeSet::new();
    let mut segments = Vec::new();
    let mut words = Vec::new();
    let base = wasm.as_ptr() as usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| format!("the wasm does not parse: {e}"))? {
            Payload::CodeSectionEntry(body) => {
                let mut ops = body
                    .get_operators_reader()
                    .map_err(|e| format!("a function does not parse: {e}"))?;
                while !ops.eof() {
                    let op = ops
                        .read()
                        .map_err(|e| format!("an instruction does not parse: {e}"))?;
                    if !note(&op, &mut refs) {
                        return Ok(None);
                    }
                }
            }
            Payload::GlobalSection(globals) => {
                for g in globals {
                    let g = g.map_err(|e| format!("a global does not parse: {e}"))?;
                    if !const_expr(g.init_expr.get_operators_reader(), &mut refs)? {
                        return Ok(None);
                    }
                }
            }
            Payload::DataSection(data) => {
                for d in data {
                    let d = d.map_err(|e| format!("a data segment does not parse: {e}"))?;
                    let DataKind::Active { offset_expr, .. } = d.kind else {
                        return Ok(None);
                    };
                    let mut at = BTreeSet::new();
                    if !const_expr(offset_expr.get_operators_reader(), &mut at)? {
                        return Ok(None);
                    }
                    let Some(&addr) = at.iter().next().filter(|_| at.len() == 1) else {
                        return Ok(None);
                    };
                    for w in d.data.windows(4) {
                        words.push(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
                    }
                    segments.push(Segment {
                        addr,
                        file: d.data.as_ptr() as usize - base,
                        len: d.data.len(),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(Some(Module {
        refs,
        segments,
        words,
    }))
}

/// The constants of a constant expression into `refs`; false when it has other instructions
/// than constants and `end` (a computed address).
fn const_expr(mut ops: wasmparser::OperatorsReader<'_>, refs: &mut BTreeSet<u32>) -> Result<bool> {
    while !ops.eof() {
        match ops
            .read()
            .map_err(|e| format!("a constant expression does not parse: {e}"))?
        {
            Operator::End => {}
            op @ (Operator::I32Const { .. } | Operator::I64Const { .. }) => {
                note(&op, refs);
            }
            Operator::RefNull { .. } | Operator::RefFunc { .. } => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// Notes what `op` may name as an address; false for a memory instruction this walk does not
/// know (then nothing is zeroed).
fn note(op: &Operator<'_>, refs: &mut BTreeSet<u32>) -> bool {
    use Operator as O;
    match op {
        O::I32Const { value } => {
            refs.insert(*value as u32);
        }
        O::I64Const { value } => {
            refs.insert(*value as u32);
            refs.insert((*value as u64 >> 32) as u32);
        }
        O::I32Load { memarg }
        | O::I64Load { memarg }
        | O::F32Load { memarg }
        | O::F64Load { memarg }
        | O::I32Load8S { memarg }
        | O::I32Load8U { memarg }
        | O::I32Load16S { memarg }
        | O::I32Load16U { memarg }
        | O::I64Load8S { memarg }
        | O::I64Load8U { memarg }
        | O::I64Load16S { memarg }
        | O::I64Load16U { memarg }
        | O::I64Load32S { memarg }
        | O::I64Load32U { memarg }
        | O::I32Store { memarg }
        | O::I64Store { memarg }
        | O::F32Store { memarg }
        | O::F64Store { memarg }
        | O::I32Store8 { memarg }
        | O::I32Store16 { memarg }
        | O::I64Store8 { memarg }
        | O::I64Store16 { memarg }
        | O::I64Store32 { memarg } => {
            refs.insert(memarg.offset as u32);
        }
        // Any other instruction with an offset (SIMD, atomics) is one this walk does not know.
        other => return !format!("{other:?}").contains("memarg"),
    }
    true
}

/// The runs of printable ASCII in `bytes` at least [`MIN_RUN`] long, as `(start, end)`.
fn text_runs(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, b) in bytes.iter().chain([&0]).enumerate() {
        match (start, (0x20..0x7f).contains(b)) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                if i - s >= MIN_RUN {
                    runs.push((s, i));
                }
                start = None;
            }
            _ => {}
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{
        CodeSection, ConstExpr, DataSection, Function, FunctionSection, Instruction, MemArg,
        MemorySection, MemoryType, Module as Encoder, TypeSection,
    };

    /// A module with `data` at address 1024 and one function running `code`.
    fn module(data: &[u8], code: &[Instruction<'_>]) -> Vec<u8> {
        let mut m = Encoder::new();
        let mut types = TypeSection::new();
        types.ty().function([], []);
        m.section(&types);
        let mut funcs = FunctionSection::new();
        funcs.function(0);
        m.section(&funcs);
        let mut mem = MemorySection::new();
        mem.memory(MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        m.section(&mem);
        let mut body = Function::new([]);
        for i in code {
            body.instruction(i);
        }
        body.instruction(&Instruction::End);
        let mut codes = CodeSection::new();
        codes.function(&body);
        m.section(&codes);
        let mut d = DataSection::new();
        d.active(0, &ConstExpr::i32_const(1024), data.iter().copied());
        m.section(&d);
        m.finish()
    }

    /// The data segment's bytes after zeroing, and how many were zeroed.
    fn zeroed(data: &[u8], code: &[Instruction<'_>]) -> (Vec<u8>, usize) {
        let mut wasm = module(data, code);
        let n = zero_unreferenced(&mut wasm).unwrap();
        assert!(wasmparser::validate(&wasm).is_ok());
        let at = wasm.len() - data.len();
        (wasm[at..].to_vec(), n)
    }

    const DATA: &[u8] = b"live text\x01\x02dead text\x01\x02more dead";

    fn load(offset: u64) -> Instruction<'static> {
        Instruction::I32Load8U(MemArg {
            offset,
            align: 0,
            memory_index: 0,
        })
    }

    #[test]
    fn text_nothing_names_is_zeroed() {
        let (out, n) = zeroed(DATA, &[Instruction::I32Const(1024), Instruction::Drop]);
        assert_eq!(n, 18);
        assert_eq!(&out[..11], b"live text\x01\x02");
        assert!(out[11..20].iter().all(|&b| b == 0));
        assert_eq!(&out[20..22], b"\x01\x02");
    }

    #[test]
    fn a_reference_anywhere_in_a_text_keeps_it() {
        // Into the middle; by a load offset; by the high half of an i64 (a pointer and a
        // length stored at once).
        let code = [
            Instruction::I32Const(1024 + 3),
            Instruction::Drop,
            Instruction::I32Const(0),
            load(1024 + 11),
            Instruction::Drop,
            Instruction::I64Const(((1024 + 22) << 32) | 9),
            Instruction::Drop,
        ];
        assert_eq!(zeroed(DATA, &code).1, 0);
    }

    #[test]
    fn a_pointer_anywhere_in_the_data_keeps_its_target() {
        // A static at 1024 holding the address of the text at 1032 (named by no code); the
        // text after it is named by nothing.
        let mut data = (1032u32).to_le_bytes().to_vec();
        data.extend([1, 2, 3, 4]);
        data.extend(b"reached text\x01unreached");
        let (out, n) = zeroed(&data, &[]);
        assert_eq!(n, 9);
        assert_eq!(&out[8..20], b"reached text");
        assert!(out[21..].iter().all(|&b| b == 0));
        // Unaligned, into the middle of a text (at 1038): that text stays, the label before
        // the pointer (named by nothing) goes.
        let mut data = b"\x01label:".to_vec();
        data.extend((1024u32 + 20).to_le_bytes());
        data.extend(b"\x01\x01\x01some texts");
        let (out, n) = zeroed(&data, &[]);
        assert_eq!(n, 6);
        assert_eq!(&out[14..], b"some texts");
    }

    #[test]
    fn a_memory_instruction_it_does_not_know_leaves_everything() {
        let code = [
            Instruction::I32Const(0),
            Instruction::V128Load(MemArg {
                offset: 0,
                align: 0,
                memory_index: 0,
            }),
            Instruction::Drop,
        ];
        assert_eq!(zeroed(DATA, &code).1, 0);
    }

    #[test]
    fn runs_are_printable_ascii_of_four_or_more() {
        assert_eq!(text_runs(b"ab\x00abcd\x7fxyzw"), vec![(3, 7), (8, 12)]);
        assert_eq!(text_runs(b""), vec![]);
    }
}
