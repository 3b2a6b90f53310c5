//! The one x86 instruction decoder of hv: prefixes, opcode, ModRM/SIB/displacement and
//! immediate, giving an instruction's length and what it is. QEMU's SVM has no next-RIP save
//! and no decode assists, so every exit that completes an instruction (CPUID, HLT, RDMSR,
//! WRMSR, XSETBV, VMMCALL) reads the bytes at RIP through the guest page walk and asks here how
//! long the instruction is: a prefixed CPUID (`66 0f a2`) resumes after its last byte, not in
//! its middle.
//!
//! Why a small module rather than a crate such as `iced-x86`: hv needs lengths for a handful
//! of opcodes now and, for MMIO emulation later, the operands of `mov`, `movzx` and `bt`; the
//! general decoder brings tables for the whole ISA for instructions hv will never emulate.
//! Measured here: `iced-x86` 1.22 with `default-features = false, features = ["decoder",
//! "no_std"]` grew hv's `.text` from 219 KB to 330 KB (+50%) and added about 11 s to a clean
//! release build of the kernel (and again to each check and clippy build). This module decodes the general
//! structure for every form it accepts (legacy prefixes, REX, the 0F and 0F 38/3A maps,
//! ModRM with SIB and displacements in 16-, 32- and 64-bit addressing) and names the opcodes
//! hv handles, including the `mov`/`movzx`/`movsx`/`bt` forms, so MMIO emulation grows by
//! adding operand decoding here, not a second decoder. Anything else is
//! [`DecodeError::Unsupported`].
//!
//! For an access to memory outside the domain's RAM, [`Instruction::memory_operand`] says
//! what the instruction does with its memory operand: how many bytes it reads or writes, and
//! which register or flags take the result (`mov`, `movzx`, `movsx`, `bt`, and `and`, `or`,
//! `cmp`, `test` with a register or an immediate); `svm::emulate::unbacked` carries it out.

/// The longest x86 instruction.
pub const MAX_LEN: usize = 15;

/// The code segment's default sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 16-bit code (CS.D = 0).
    Bits16,
    /// 32-bit code (CS.D = 1).
    Bits32,
    /// 64-bit code (EFER.LMA and CS.L).
    Bits64,
}

/// The instructions hv emulates or completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// `0f a2`.
    Cpuid,
    /// `f4`.
    Hlt,
    /// `0f 32`.
    Rdmsr,
    /// `0f 30`.
    Wrmsr,
    /// `0f 01 d1`.
    Xsetbv,
    /// `0f 01 d9`.
    Vmmcall,
    /// `0f 08`.
    Invd,
    /// `0f 09`.
    Wbinvd,
    /// `88`/`89`/`8a`/`8b`: `mov` between a register and r/m.
    MovRm,
    /// `c6 /0 ib`, `c7 /0 iw/id`: `mov` of an immediate to r/m.
    MovImm,
    /// `0f b6`/`0f b7`: `movzx`.
    Movzx,
    /// `0f be`/`0f bf`: `movsx`.
    Movsx,
    /// `0f a3`: `bt r/m, reg`.
    BtReg,
    /// `0f ba /4 ib`: `bt r/m, imm8`.
    BtImm,
    /// `0f 22 /r`: `mov` of a general register to a control register (ModRM.mod ignored).
    MovToCr,
    /// `a0`-`a3`: `mov` between AL/eAX and an absolute address (`moffs`).
    MovMoffs,
    /// `20`-`23`, `80 /4`, `81 /4`, `83 /4`: `and`.
    And,
    /// `08`-`0b`, `80 /1`, `81 /1`, `83 /1`: `or`.
    Or,
    /// `38`-`3b`, `80 /7`, `81 /7`, `83 /7`: `cmp`.
    Cmp,
    /// `84`, `85`, `f6 /0`, `f7 /0`: `test`.
    Test,
}

/// A decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// Length in bytes, prefixes included.
    pub len: usize,
    /// What it is.
    pub opcode: Opcode,
    /// The ModRM byte, for the forms that have one.
    pub modrm: Option<u8>,
    /// The REX prefix (64-bit code only), 0 if none.
    pub rex: u8,
    /// Operand size in bytes (2, 4 or 8) from the mode, `66` and REX.W.
    pub operand_size: u8,
    /// Address size in bytes (2, 4 or 8) from the mode and `67`.
    pub address_size: u8,
    /// The last opcode byte (`8b` of `mov r32, r/m32`, `b6` of `0f b6`): it tells the
    /// direction and the byte forms apart.
    pub opcode_byte: u8,
    /// The immediate, sign-extended from its encoded size (0 for forms without one; a
    /// `moffs` is kept here too, zero-extended).
    pub immediate: u64,
}

/// Why bytes do not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end before the instruction does.
    Truncated,
    /// More than [`MAX_LEN`] bytes (`#GP` on hardware).
    TooLong,
    /// An opcode hv does not decode.
    Unsupported,
}

/// How an opcode continues after its opcode bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Nothing more.
    Plain,
    /// A ModRM (with SIB and displacement).
    ModRm,
    /// A ModRM and an 8-bit immediate.
    ModRmImm8,
    /// A ModRM and a 16- or 32-bit immediate (`iz`).
    ModRmImmZ,
    /// A ModRM that always names registers (its mod field ignored): no SIB or displacement.
    ModRmRegisters,
    /// An absolute address of the address size (`moffs`), no ModRM.
    Moffs,
}

/// A cursor over the instruction bytes.
struct Bytes<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Bytes<'_> {
    fn next(&mut self) -> Result<u8, DecodeError> {
        if self.at >= MAX_LEN {
            return Err(DecodeError::TooLong);
        }
        let b = *self.bytes.get(self.at).ok_or(DecodeError::Truncated)?;
        self.at += 1;
        Ok(b)
    }

    /// The next `n` bytes (at most 8) as a little-endian number.
    fn take(&mut self, n: usize) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..n {
            v |= u64::from(self.next()?) << (8 * i);
        }
        Ok(v)
    }

    fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.take(n).map(|_| ())
    }
}

/// Decodes the instruction at the start of `bytes` in code of `mode`.
pub fn decode(bytes: &[u8], mode: Mode) -> Result<Instruction, DecodeError> {
    let mut b = Bytes { bytes, at: 0 };
    let (mut opsize16, mut addr_override, mut rex) = (false, false, 0u8);
    let mut byte = b.next()?;
    loop {
        match byte {
            0x66 => opsize16 = true,
            0x67 => addr_override = true,
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0xf0 | 0xf2 | 0xf3 => {}
            // REX counts only right before the opcode; a legacy prefix after it voids it.
            0x40..=0x4f if mode == Mode::Bits64 => {
                rex = byte;
                byte = b.next()?;
                if is_legacy_prefix(byte) {
                    rex = 0;
                    continue;
                }
                break;
            }
            _ => break,
        }
        byte = b.next()?;
    }
    let rex_w = rex & 0x08 != 0;
    let operand_size = match (mode, rex_w, opsize16) {
        (Mode::Bits64, true, _) => 8,
        (Mode::Bits16, _, false) | (Mode::Bits32 | Mode::Bits64, _, true) => 2,
        _ => 4,
    };
    let address_size = match (mode, addr_override) {
        (Mode::Bits16, false) | (Mode::Bits32, true) => 2,
        (Mode::Bits32, false) | (Mode::Bits64, true) => 4,
        (Mode::Bits64, false) => 8,
        (Mode::Bits16, true) => 4,
    };
    let mut opcode_byte = byte;
    let (opcode, form) = if byte == 0x0f {
        opcode_byte = b.next()?;
        match opcode_byte {
            0xa2 => (Opcode::Cpuid, Form::Plain),
            0x32 => (Opcode::Rdmsr, Form::Plain),
            0x30 => (Opcode::Wrmsr, Form::Plain),
            0x08 => (Opcode::Invd, Form::Plain),
            0x09 => (Opcode::Wbinvd, Form::Plain),
            0x01 => match b.next()? {
                0xd1 => (Opcode::Xsetbv, Form::Plain),
                0xd9 => (Opcode::Vmmcall, Form::Plain),
                _ => return Err(DecodeError::Unsupported),
            },
            0xb6 | 0xb7 => (Opcode::Movzx, Form::ModRm),
            0xbe | 0xbf => (Opcode::Movsx, Form::ModRm),
            0xa3 => (Opcode::BtReg, Form::ModRm),
            0xba => (Opcode::BtImm, Form::ModRmImm8),
            0x22 => (Opcode::MovToCr, Form::ModRmRegisters),
            _ => return Err(DecodeError::Unsupported),
        }
    } else {
        match byte {
            0xf4 => (Opcode::Hlt, Form::Plain),
            0x88..=0x8b => (Opcode::MovRm, Form::ModRm),
            0xc6 => (Opcode::MovImm, Form::ModRmImm8),
            0xc7 => (Opcode::MovImm, Form::ModRmImmZ),
            0xa0..=0xa3 => (Opcode::MovMoffs, Form::Moffs),
            0x20..=0x23 => (Opcode::And, Form::ModRm),
            0x08..=0x0b => (Opcode::Or, Form::ModRm),
            0x38..=0x3b => (Opcode::Cmp, Form::ModRm),
            0x84 | 0x85 => (Opcode::Test, Form::ModRm),
            0xf6 => (Opcode::Test, Form::ModRmImm8),
            0xf7 => (Opcode::Test, Form::ModRmImmZ),
            // The group-1 forms; which operation is ModRM.reg, checked below.
            0x80 | 0x83 => (Opcode::And, Form::ModRmImm8),
            0x81 => (Opcode::And, Form::ModRmImmZ),
            _ => return Err(DecodeError::Unsupported),
        }
    };
    let modrm = match form {
        Form::Plain => None,
        Form::ModRm | Form::ModRmImm8 | Form::ModRmImmZ => {
            let modrm = b.next()?;
            skip_address(&mut b, modrm, address_size)?;
            Some(modrm)
        }
        Form::ModRmRegisters => Some(b.next()?),
        Form::Moffs => None,
    };
    let reg = modrm.map(|m| (m >> 3) & 7);
    let opcode = match (opcode, reg) {
        (Opcode::MovImm | Opcode::Test, Some(r)) if r != 0 && form != Form::ModRm => {
            return Err(DecodeError::Unsupported);
        }
        (Opcode::BtImm, Some(r)) if r != 4 => return Err(DecodeError::Unsupported),
        (Opcode::And, Some(r)) if matches!(opcode_byte, 0x80 | 0x81 | 0x83) => match r {
            1 => Opcode::Or,
            4 => Opcode::And,
            7 => Opcode::Cmp,
            _ => return Err(DecodeError::Unsupported),
        },
        _ => opcode,
    };
    // `iz`: 16 bits with a 16-bit operand, else 32 (also with REX.W).
    let immz = if operand_size == 2 { 2 } else { 4 };
    let immediate = match form {
        Form::ModRmImm8 => sign_extend(b.take(1)?, 1),
        Form::ModRmImmZ => sign_extend(b.take(immz)?, immz),
        Form::Moffs => b.take(usize::from(address_size))?,
        Form::Plain | Form::ModRm | Form::ModRmRegisters => 0,
    };
    Ok(Instruction {
        len: b.at,
        opcode,
        modrm,
        rex,
        operand_size,
        address_size,
        opcode_byte,
        immediate,
    })
}

/// `value`'s low `bytes` bytes sign-extended to 64 bits.
fn sign_extend(value: u64, bytes: usize) -> u64 {
    let shift = 64 - 8 * bytes.clamp(1, 8);
    ((value << shift).cast_signed() >> shift).cast_unsigned()
}

impl Instruction {
    /// For [`Opcode::MovToCr`]: the control register (ModRM.reg, REX.R) and the general
    /// register (ModRM.rm, REX.B, 0 = RAX .. 15 = R15) it is loaded from.
    pub fn mov_to_cr(&self) -> Option<(u8, u8)> {
        let modrm = self.modrm.filter(|_| self.opcode == Opcode::MovToCr)?;
        let cr = ((modrm >> 3) & 7) | ((self.rex & 0x4) << 1);
        let gpr = (modrm & 7) | ((self.rex & 0x1) << 3);
        Some((cr, gpr))
    }
}

/// A general register as an operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Register {
    /// 0 = RAX .. 15 = R15.
    pub number: u8,
    /// Its size in bytes (1, 2, 4 or 8).
    pub size: u8,
    /// AH, CH, DH or BH: bits 15:8 of register `number` (0-3).
    pub high_byte: bool,
}

/// How an instruction accesses its memory operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// It reads it.
    Read,
    /// It writes it.
    Write,
    /// It reads it and writes a result back (`and`/`or` to memory).
    ReadWrite,
}

/// The operation of an [`Effect::Alu`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AluOp {
    /// `and`: the result and the flags.
    And,
    /// `or`: the result and the flags.
    Or,
    /// `cmp`: the flags of a subtraction.
    Cmp,
    /// `test`: the flags of an `and`.
    Test,
}

/// The second operand of an [`Effect::Alu`] or the bit offset of [`Effect::BitTest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// A register.
    Register(Register),
    /// An immediate (sign-extended).
    Immediate(u64),
}

/// What an instruction does with the value of its memory operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// `mov`, `movzx`, `movsx` to a register: the register takes the value, extended.
    Load {
        /// The destination.
        register: Register,
        /// Sign-extended (`movsx`) rather than zero-extended.
        signed: bool,
    },
    /// `mov` to memory: nothing in the CPU changes.
    Store,
    /// `bt`: CF takes the bit.
    BitTest {
        /// The bit offset.
        bit: Operand,
    },
    /// `and`, `or`, `cmp`, `test`: flags from `memory op other` (or `other op memory` when
    /// `register_first`), and for `and`/`or` into a register, that register takes the result.
    Alu {
        /// The operation.
        op: AluOp,
        /// The other operand.
        other: Operand,
        /// The register is the first (destination) operand.
        register_first: bool,
    },
}

/// An instruction's memory operand: how it is accessed, its size, and what it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryOperand {
    /// Read, written or both.
    pub access: Access,
    /// Its size in bytes (1, 2, 4 or 8).
    pub size: u8,
    /// What the instruction does with it.
    pub effect: Effect,
}

impl Instruction {
    /// The register ModRM.reg (with REX.R) names, of `size` bytes.
    fn reg_operand(&self, size: u8) -> Option<Register> {
        let modrm = self.modrm?;
        let low = (modrm >> 3) & 7;
        Some(self.register(low | ((self.rex & 0x4) << 1), size))
    }

    /// Register `number` of `size` bytes: without a REX prefix, byte registers 4-7 are
    /// AH, CH, DH and BH.
    fn register(&self, number: u8, size: u8) -> Register {
        let high_byte = size == 1 && self.rex == 0 && (4..8).contains(&number);
        Register {
            number: if high_byte { number - 4 } else { number },
            size,
            high_byte,
        }
    }

    /// What the instruction does with its memory operand, for the forms that have one
    /// (`None` for a ModRM naming a register, and for instructions without a memory
    /// operand).
    pub fn memory_operand(&self) -> Option<MemoryOperand> {
        let op = self.operand_size;
        // Bit 0 of most one-byte opcodes picks byte (0) or full size (1).
        let sized = if self.opcode_byte & 1 == 0 { 1 } else { op };
        // Bit 1 of the ALU and `mov` r/m forms: the register is the destination.
        let to_register = self.opcode_byte & 2 != 0;
        if self.opcode == Opcode::MovMoffs {
            let register = self.register(0, sized);
            let (access, effect) = if to_register {
                (Access::Write, Effect::Store)
            } else {
                (
                    Access::Read,
                    Effect::Load {
                        register,
                        signed: false,
                    },
                )
            };
            return Some(MemoryOperand {
                access,
                size: sized,
                effect,
            });
        }
        if self.modrm? >> 6 == 3 {
            return None;
        }
        let imm = Operand::Immediate(self.immediate);
        let (access, size, effect) = match self.opcode {
            Opcode::MovRm if to_register => (
                Access::Read,
                sized,
                Effect::Load {
                    register: self.reg_operand(sized)?,
                    signed: false,
                },
            ),
            Opcode::MovRm | Opcode::MovImm => (Access::Write, sized, Effect::Store),
            Opcode::Movzx | Opcode::Movsx => (
                Access::Read,
                if self.opcode_byte & 1 == 0 { 1 } else { 2 },
                Effect::Load {
                    register: self.reg_operand(op)?,
                    signed: self.opcode == Opcode::Movsx,
                },
            ),
            Opcode::BtReg => (
                Access::Read,
                op,
                Effect::BitTest {
                    bit: Operand::Register(self.reg_operand(op)?),
                },
            ),
            Opcode::BtImm => (Access::Read, op, Effect::BitTest { bit: imm }),
            Opcode::And | Opcode::Or | Opcode::Cmp | Opcode::Test => {
                let alu = match self.opcode {
                    Opcode::And => AluOp::And,
                    Opcode::Or => AluOp::Or,
                    Opcode::Cmp => AluOp::Cmp,
                    _ => AluOp::Test,
                };
                let immediate_form = matches!(self.opcode_byte, 0x80 | 0x81 | 0x83 | 0xf6 | 0xf7);
                let (other, register_first) = if immediate_form {
                    (imm, false)
                } else {
                    let reg = Operand::Register(self.reg_operand(sized)?);
                    (reg, to_register && alu != AluOp::Test)
                };
                let access = match alu {
                    AluOp::And | AluOp::Or if !register_first => Access::ReadWrite,
                    _ => Access::Read,
                };
                let effect = Effect::Alu {
                    op: alu,
                    other,
                    register_first,
                };
                (access, sized, effect)
            }
            _ => return None,
        };
        Some(MemoryOperand {
            access,
            size,
            effect,
        })
    }

    /// What a store ([`Effect::Store`]: `mov` to memory) writes: the source register or
    /// immediate (an emulated device, the local APIC, needs the value; `None` for anything
    /// else).
    pub fn stored_value(&self) -> Option<Operand> {
        let sized = if self.opcode_byte & 1 == 0 {
            1
        } else {
            self.operand_size
        };
        match self.opcode {
            Opcode::MovMoffs if self.opcode_byte & 2 != 0 => {
                Some(Operand::Register(self.register(0, sized)))
            }
            Opcode::MovRm if self.opcode_byte & 2 == 0 && self.modrm? >> 6 != 3 => {
                Some(Operand::Register(self.reg_operand(sized)?))
            }
            Opcode::MovImm if self.modrm? >> 6 != 3 => Some(Operand::Immediate(self.immediate)),
            _ => None,
        }
    }
}

fn is_legacy_prefix(b: u8) -> bool {
    matches!(
        b,
        0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3
    )
}

/// Skips the SIB byte and displacement a ModRM implies.
fn skip_address(b: &mut Bytes<'_>, modrm: u8, address_size: u8) -> Result<(), DecodeError> {
    let (md, rm) = (modrm >> 6, modrm & 7);
    if md == 3 {
        return Ok(());
    }
    if address_size == 2 {
        let disp = match (md, rm) {
            (0, 6) | (2, _) => 2,
            (1, _) => 1,
            _ => 0,
        };
        return b.skip(disp);
    }
    let mut disp = match md {
        1 => 1,
        2 => 4,
        _ => 0,
    };
    if rm == 4 {
        let sib = b.next()?;
        if md == 0 && sib & 7 == 5 {
            disp = 4;
        }
    } else if md == 0 && rm == 5 {
        disp = 4; // disp32, or RIP-relative in 64-bit code
    }
    b.skip(disp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len(bytes: &[u8], mode: Mode) -> Result<(usize, Opcode), DecodeError> {
        decode(bytes, mode).map(|i| (i.len, i.opcode))
    }

    #[test]
    fn the_exits_instructions_and_their_prefixes() {
        use Mode::*;
        assert_eq!(len(&[0x0f, 0xa2, 0xcc], Bits64), Ok((2, Opcode::Cpuid)));
        assert_eq!(len(&[0x66, 0x0f, 0xa2], Bits64), Ok((3, Opcode::Cpuid)));
        assert_eq!(
            len(&[0xf3, 0x2e, 0x48, 0x0f, 0xa2], Bits64),
            Ok((5, Opcode::Cpuid))
        );
        assert_eq!(len(&[0xf4], Bits32), Ok((1, Opcode::Hlt)));
        assert_eq!(len(&[0x3e, 0xf4], Bits16), Ok((2, Opcode::Hlt)));
        assert_eq!(len(&[0x0f, 0x32], Bits64), Ok((2, Opcode::Rdmsr)));
        assert_eq!(len(&[0x41, 0x0f, 0x30], Bits64), Ok((3, Opcode::Wrmsr)));
        assert_eq!(len(&[0x0f, 0x01, 0xd1], Bits64), Ok((3, Opcode::Xsetbv)));
        assert_eq!(len(&[0x2e, 0x0f, 0x09], Bits32), Ok((3, Opcode::Wbinvd)));
        assert_eq!(len(&[0x0f, 0x08], Bits64), Ok((2, Opcode::Invd)));
        assert_eq!(
            len(&[0x0f, 0x01, 0xd9, 0xc3], Bits64),
            Ok((3, Opcode::Vmmcall))
        );
        assert_eq!(
            len(&[0x67, 0x0f, 0x01, 0xd9], Bits32),
            Ok((4, Opcode::Vmmcall))
        );
        // In 32-bit code 0x48 is `dec eax`, not REX.
        assert_eq!(
            len(&[0x48, 0x0f, 0xa2], Bits32),
            Err(DecodeError::Unsupported)
        );
        // A REX followed by a legacy prefix is void; the prefix still counts.
        let i = decode(&[0x48, 0x66, 0x0f, 0xa2], Bits64).unwrap();
        assert_eq!((i.len, i.rex, i.operand_size), (4, 0, 2));
    }

    #[test]
    fn truncated_too_long_and_unknown() {
        use Mode::*;
        assert_eq!(len(&[], Bits64), Err(DecodeError::Truncated));
        assert_eq!(len(&[0x66, 0x0f], Bits64), Err(DecodeError::Truncated));
        assert_eq!(len(&[0x0f, 0x01], Bits64), Err(DecodeError::Truncated));
        let mut long = [0x66u8; 16];
        long[14..].copy_from_slice(&[0x0f, 0xa2]);
        assert_eq!(len(&long, Bits64), Err(DecodeError::TooLong));
        long[..13].fill(0x2e);
        assert_eq!(len(&long[1..], Bits64), Ok((15, Opcode::Cpuid)));
        assert_eq!(len(&[0x90], Bits64), Err(DecodeError::Unsupported));
        assert_eq!(
            len(&[0x0f, 0x01, 0xd8], Bits64),
            Err(DecodeError::Unsupported)
        );
        assert_eq!(
            len(&[0xc7, 0x08, 0, 0, 0, 0], Bits64),
            Err(DecodeError::Unsupported)
        );
    }

    #[test]
    fn mmio_forms_with_every_addressing_shape() {
        use Mode::*;
        // mov eax, [rbx]; mov [rip+disp32], ecx; mov rax, [rsp+disp8]; mov eax, [disp32] (SIB).
        assert_eq!(len(&[0x8b, 0x03], Bits64), Ok((2, Opcode::MovRm)));
        assert_eq!(
            len(&[0x89, 0x0d, 1, 2, 3, 4], Bits64),
            Ok((6, Opcode::MovRm))
        );
        assert_eq!(
            len(&[0x48, 0x8b, 0x44, 0x24, 0x08], Bits64),
            Ok((5, Opcode::MovRm))
        );
        assert_eq!(
            len(&[0x8b, 0x04, 0x25, 0, 0, 0xe0, 0xfe], Bits64),
            Ok((7, Opcode::MovRm))
        );
        // mov dword [rax+disp32], imm32; with 66: imm16; REX.W keeps imm32; byte: imm8.
        assert_eq!(
            len(&[0xc7, 0x80, 0, 1, 0, 0, 1, 2, 3, 4], Bits64),
            Ok((10, Opcode::MovImm))
        );
        assert_eq!(
            len(&[0x66, 0xc7, 0x00, 1, 2], Bits64),
            Ok((5, Opcode::MovImm))
        );
        assert_eq!(
            len(&[0x48, 0xc7, 0x00, 1, 2, 3, 4], Bits64),
            Ok((7, Opcode::MovImm))
        );
        assert_eq!(
            len(&[0xc6, 0x40, 0x10, 0xff], Bits64),
            Ok((4, Opcode::MovImm))
        );
        // movzx eax, word [rdi]; movsx; bt [rax], ecx; bt dword [rax], 5.
        assert_eq!(len(&[0x0f, 0xb7, 0x07], Bits64), Ok((3, Opcode::Movzx)));
        assert_eq!(
            len(&[0x0f, 0xbe, 0x47, 0x01], Bits64),
            Ok((4, Opcode::Movsx))
        );
        assert_eq!(len(&[0x0f, 0xa3, 0x08], Bits64), Ok((3, Opcode::BtReg)));
        assert_eq!(len(&[0x0f, 0xba, 0x20, 5], Bits64), Ok((4, Opcode::BtImm)));
        assert_eq!(
            len(&[0x0f, 0xba, 0x28, 5], Bits64),
            Err(DecodeError::Unsupported)
        );
        // 16-bit addressing: [disp16], [bx+si+disp8], [bp+di+disp16]; 67 switches in 32-bit.
        assert_eq!(
            len(&[0x8b, 0x06, 0x34, 0x12], Bits16),
            Ok((4, Opcode::MovRm))
        );
        assert_eq!(len(&[0x8b, 0x40, 0x01], Bits16), Ok((3, Opcode::MovRm)));
        assert_eq!(len(&[0x8b, 0x83, 1, 2], Bits16), Ok((4, Opcode::MovRm)));
        assert_eq!(
            len(&[0x67, 0x8b, 0x06, 0x34, 0x12], Bits32),
            Ok((5, Opcode::MovRm))
        );
        let i = decode(&[0x66, 0x8b, 0x03], Bits32).unwrap();
        assert_eq!(
            (i.operand_size, i.address_size, i.modrm),
            (2, 4, Some(0x03))
        );
    }

    proptest::proptest! {
        /// Any bytes in any mode: no panic, and a decoded length never exceeds what was
        /// given or 15.
        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..20), m in 0u8..3) {
            let mode = [Mode::Bits16, Mode::Bits32, Mode::Bits64][usize::from(m)];
            if let Ok(i) = decode(&bytes, mode) {
                proptest::prop_assert!(i.len <= bytes.len().min(MAX_LEN));
                if let Some(m) = i.memory_operand() {
                    proptest::prop_assert!(matches!(m.size, 1 | 2 | 4 | 8));
                }
            }
        }
    }

    #[test]
    fn mov_to_control_registers() {
        // mov %rax,%cr4; mov %r9,%cr4 (REX.B); mov %eax,%cr4 in 32-bit code; mod ignored.
        let i = decode(&[0x0f, 0x22, 0xe0], Mode::Bits64).unwrap();
        assert_eq!(
            (i.len, i.opcode, i.mov_to_cr()),
            (3, Opcode::MovToCr, Some((4, 0)))
        );
        let i = decode(&[0x41, 0x0f, 0x22, 0xe1], Mode::Bits64).unwrap();
        assert_eq!((i.len, i.mov_to_cr()), (4, Some((4, 9))));
        let i = decode(&[0x44, 0x0f, 0x22, 0xc0], Mode::Bits64).unwrap();
        assert_eq!(i.mov_to_cr(), Some((8, 0)), "REX.R: CR8");
        let i = decode(&[0x0f, 0x22, 0x23], Mode::Bits32).unwrap();
        assert_eq!(
            (i.len, i.mov_to_cr()),
            (3, Some((4, 3))),
            "mod 0 still a register"
        );
        assert_eq!(
            decode(&[0x0f, 0xa2], Mode::Bits64).unwrap().mov_to_cr(),
            None
        );
    }

    #[test]
    fn stored_values_of_mov_to_memory() {
        let v = |bytes: &[u8]| decode(bytes, Mode::Bits64).unwrap().stored_value();
        let r = |number, size| {
            Some(Operand::Register(Register {
                number,
                size,
                high_byte: false,
            }))
        };
        // mov [rax], ecx; mov [rdx+0xb0], esi; mov [rax], r9d; movl $0x1ff, [rax+0xf0].
        assert_eq!(v(&[0x89, 0x08]), r(1, 4));
        assert_eq!(v(&[0x89, 0xb2, 0xb0, 0, 0, 0]), r(6, 4));
        assert_eq!(v(&[0x44, 0x89, 0x08]), r(9, 4));
        assert_eq!(
            v(&[0xc7, 0x80, 0xf0, 0, 0, 0, 0xff, 0x01, 0, 0]),
            Some(Operand::Immediate(0x1ff))
        );
        // Loads and register forms store nothing.
        assert_eq!(v(&[0x8b, 0x08]), None);
        assert_eq!(v(&[0x89, 0xc8]), None);
    }

    #[test]
    fn memory_operands_access_kind_size_and_register() {
        let m = |bytes: &[u8], mode| decode(bytes, mode).unwrap().memory_operand();
        let reg = |number, size, high_byte| Register {
            number,
            size,
            high_byte,
        };
        let load = |register| Effect::Load {
            register,
            signed: false,
        };
        use Mode::*;
        // mov ecx, [rax]; mov [rax], cl; mov bh, [rax]; mov r12w, [rax].
        assert_eq!(
            m(&[0x8b, 0x08], Bits64),
            Some(MemoryOperand {
                access: Access::Read,
                size: 4,
                effect: load(reg(1, 4, false)),
            })
        );
        let store = m(&[0x88, 0x08], Bits64).unwrap();
        assert_eq!((store.access, store.size), (Access::Write, 1));
        assert_eq!(
            m(&[0x8a, 0x38], Bits64).unwrap().effect,
            load(reg(3, 1, true))
        );
        assert_eq!(
            m(&[0x66, 0x44, 0x8b, 0x20], Bits64).unwrap().effect,
            load(reg(12, 2, false))
        );
        // A register operand is no memory operand: mov ecx, eax; and also no ModRM at all.
        assert_eq!(m(&[0x8b, 0xc8], Bits64), None);
        assert_eq!(m(&[0x0f, 0xa2], Bits64), None);
        // movsx eax, word [rax]: reads 2, sign-extends to 4.
        let sx = m(&[0x0f, 0xbf, 0x00], Bits32).unwrap();
        assert_eq!(
            (sx.size, sx.effect),
            (
                2,
                Effect::Load {
                    register: reg(0, 4, false),
                    signed: true
                }
            )
        );
        // mov al, [moffs32] in 32-bit code; mov [moffs], eax.
        let moffs = decode(&[0xa0, 0, 0, 0, 0xf0], Bits32).unwrap();
        assert_eq!((moffs.len, moffs.immediate), (5, 0xf000_0000));
        assert_eq!(
            moffs.memory_operand().unwrap().effect,
            load(reg(0, 1, false))
        );
        assert_eq!(
            m(&[0xa3, 0, 0, 0, 0xf0], Bits32).unwrap().access,
            Access::Write
        );
        // and [rax], ecx (read-modify-write); and ecx, [rax] (read into ecx); or byte
        // [rax], 0x80 (80 /1); cmp qword [rax], -1 (48 83 /7 ib); test [rax], ecx; test
        // word [rax], imm16 (66 f7 /0 iw).
        let and = m(&[0x21, 0x08], Bits64).unwrap();
        assert_eq!(and.access, Access::ReadWrite);
        let and_reg = m(&[0x23, 0x08], Bits64).unwrap();
        assert_eq!(
            (and_reg.access, and_reg.effect),
            (
                Access::Read,
                Effect::Alu {
                    op: AluOp::And,
                    other: Operand::Register(reg(1, 4, false)),
                    register_first: true
                }
            )
        );
        let or = m(&[0x80, 0x08, 0x80], Bits64).unwrap();
        assert_eq!(
            (or.access, or.size, or.effect),
            (
                Access::ReadWrite,
                1,
                Effect::Alu {
                    op: AluOp::Or,
                    other: Operand::Immediate(u64::MAX - 0x7f),
                    register_first: false
                }
            )
        );
        let cmp = m(&[0x48, 0x83, 0x38, 0xff], Bits64).unwrap();
        assert_eq!(
            (cmp.access, cmp.size, cmp.effect),
            (
                Access::Read,
                8,
                Effect::Alu {
                    op: AluOp::Cmp,
                    other: Operand::Immediate(u64::MAX),
                    register_first: false
                }
            )
        );
        assert_eq!(m(&[0x85, 0x08], Bits64).unwrap().access, Access::Read);
        let test = decode(&[0x66, 0xf7, 0x00, 0x34, 0x12], Bits64).unwrap();
        assert_eq!(
            (test.len, test.opcode, test.immediate),
            (5, Opcode::Test, 0x1234)
        );
        // Group-1 operations hv does not emulate (add, 81 /0) and f7 /2 (not) are refused.
        assert_eq!(
            decode(&[0x81, 0x00, 1, 0, 0, 0], Bits64),
            Err(DecodeError::Unsupported)
        );
        assert_eq!(decode(&[0xf7, 0x10], Bits64), Err(DecodeError::Unsupported));
        // bt [rax], ecx (the bit in a register); bt dword [rax], 3.
        assert_eq!(
            m(&[0x0f, 0xa3, 0x08], Bits64).unwrap().effect,
            Effect::BitTest {
                bit: Operand::Register(reg(1, 4, false))
            }
        );
        assert_eq!(
            m(&[0x0f, 0xba, 0x20, 3], Bits64).unwrap().effect,
            Effect::BitTest {
                bit: Operand::Immediate(3)
            }
        );
    }
}
