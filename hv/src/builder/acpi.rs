//! The ACPI tables Xen 4.17's toolstack gives a PVH domU (`libxl__dom_load_acpi` over
//! `tools/libacpi`'s `acpi_build_tables`), so that a kernel finds its one local APIC in a
//! MADT as it does on Xen (Linux sets up its timers only then).
//!
//! Three regions from [`ACPI_INFO_GPA`] (`ACPI_INFO_PHYSICAL_ADDRESS`), each reported as ACPI
//! in the memory map as libxl reports them: the `acpi_info` page, the tables page (FACS, DSDT,
//! FADT, MADT, XSDT, RSDT, 16-aligned in that order from its start) and the RSDP on the page
//! after the tables (its place for a kernel with `XENFEAT_linux_rsdp_unrestricted`, which every
//! PVH Linux has), whose address goes into the start info's `rsdp_paddr`.
//!
//! Where hv differs from libacpi: the DSDT is an empty one (Xen's `dsdt_pvh` declares the
//! processor objects and the `\_SB` scope); the FADT is revision 5 with the HW-reduced flag
//! (libacpi's is revision 4 with PM1a blocks no PVH domU has), and the RSDT points to it too
//! (libacpi gives the RSDT a separate revision 1 FADT).
#![allow(
    clippy::cast_possible_truncation,
    reason = "the tables lie at 0xFC00_0000..0xFC00_3000: their addresses fit the 32-bit fields"
)]

/// `ACPI_INFO_PHYSICAL_ADDRESS`: the `acpi_info` page, the first of the regions.
pub const ACPI_INFO_GPA: u64 = 0xfc00_0000;
/// The tables page (`ACPI_INFO_PHYSICAL_ADDRESS + page_size`).
pub const TABLES_GPA: u64 = ACPI_INFO_GPA + 0x1000;
/// The RSDP (after the one page of tables).
pub const RSDP_GPA: u64 = TABLES_GPA + 0x1000;
/// The frames the three regions take.
pub const ACPI_PAGES: u64 = 3;
/// The RSDP's length (`acpi_modules[0].length`: 64, the ACPI 2.0 RSDP is 36 of them).
pub const RSDP_REGION_LEN: u64 = 64;
/// The local APIC's address (`LAPIC_BASE_ADDRESS`).
pub const LAPIC_BASE: u32 = 0xfee0_0000;

/// `ACPI_OEM_ID`, `ACPI_OEM_TABLE_ID`, `ACPI_CREATOR_ID`.
const OEM_ID: [u8; 6] = *b"Xen\0\0\0";
const OEM_TABLE_ID: [u8; 8] = *b"HVM\0\0\0\0\0";
const CREATOR_ID: [u8; 4] = *b"HVML";

/// FADT flags: WBINVD, PROC_C1, PWR_BUTTON and SLP_BUTTON (no buttons), HW_REDUCED_ACPI.
const FADT_FLAGS: u32 = 1 | (1 << 2) | (1 << 4) | (1 << 5) | (1 << 20);
/// FADT `iapc_boot_arch`: `ACPI_FADT_NO_VGA`.
const FADT_NO_VGA: u16 = 1 << 2;

/// The ACPI regions' bytes: the `acpi_info` page, the tables page and the RSDP.
pub struct AcpiTables {
    /// The `acpi_info` page's first bytes (the rest of its page is zero).
    pub info: [u8; 40],
    /// The tables page's bytes (the rest of its page is zero).
    pub tables: [u8; TABLES_LEN],
    /// The RSDP.
    pub rsdp: [u8; 36],
}

/// The tables' bytes: FACS 64, DSDT 36 (48 aligned), FADT 268 (272), MADT 52 (64), XSDT 52
/// (64), RSDT 44.
pub const TABLES_LEN: usize = 64 + 48 + 272 + 64 + 64 + 44;

/// Offsets of each table in the tables page (16-aligned, in libacpi's order).
const FACS_AT: usize = 0;
const DSDT_AT: usize = 64;
const FADT_AT: usize = DSDT_AT + 48;
const MADT_AT: usize = FADT_AT + 272;
const XSDT_AT: usize = MADT_AT + 64;
const RSDT_AT: usize = XSDT_AT + 64;

/// Writes `v` little-endian at `at`.
fn put(buf: &mut [u8], at: usize, v: &[u8]) {
    buf[at..at + v.len()].copy_from_slice(v);
}

/// A table header (36 bytes) at `at`: signature, length, revision, Xen's OEM and creator.
fn header(buf: &mut [u8], at: usize, sig: &[u8; 4], len: u32, revision: u8) {
    put(buf, at, sig);
    put(buf, at + 4, &len.to_le_bytes());
    buf[at + 8] = revision;
    put(buf, at + 10, &OEM_ID);
    put(buf, at + 16, &OEM_TABLE_ID);
    put(buf, at + 24, &0u32.to_le_bytes());
    put(buf, at + 28, &CREATOR_ID);
    put(buf, at + 32, &0u32.to_le_bytes());
}

/// Sets the byte at `at + sum_at` so that `buf[at..at + len]` sums to zero.
fn checksum(buf: &mut [u8], at: usize, len: usize, sum_at: usize) {
    buf[at + sum_at] = 0;
    let sum = buf[at..at + len]
        .iter()
        .fold(0u8, |s, &b| s.wrapping_add(b));
    buf[at + sum_at] = sum.wrapping_neg();
}

/// The tables for a domain with one vCPU (local APIC ID 0, `acpi_lapic_id(0)`).
pub fn build() -> AcpiTables {
    let mut t = [0u8; TABLES_LEN];
    let gpa = |at: usize| TABLES_GPA + at as u64;
    // FACS (no checksum): version 1 (ACPI_2_0_FACS_VERSION).
    put(&mut t, FACS_AT, b"FACS");
    put(&mut t, FACS_AT + 4, &64u32.to_le_bytes());
    t[FACS_AT + 32] = 1;
    // DSDT: a header and no AML.
    header(&mut t, DSDT_AT, b"DSDT", 36, 2);
    checksum(&mut t, DSDT_AT, 36, 9);
    // FADT, revision 5.
    header(&mut t, FADT_AT, b"FACP", 268, 5);
    put(&mut t, FADT_AT + 36, &(gpa(FACS_AT) as u32).to_le_bytes());
    put(&mut t, FADT_AT + 40, &(gpa(DSDT_AT) as u32).to_le_bytes());
    put(&mut t, FADT_AT + 109, &FADT_NO_VGA.to_le_bytes());
    put(&mut t, FADT_AT + 112, &FADT_FLAGS.to_le_bytes());
    put(&mut t, FADT_AT + 132, &gpa(FACS_AT).to_le_bytes());
    put(&mut t, FADT_AT + 140, &gpa(DSDT_AT).to_le_bytes());
    checksum(&mut t, FADT_AT, 268, 9);
    // MADT: the local APIC's address, PCAT_COMPAT, one enabled local APIC (processor 0,
    // APIC ID 0), no IO-APIC (a PVH domU has none).
    header(&mut t, MADT_AT, b"APIC", 52, 2);
    put(&mut t, MADT_AT + 36, &LAPIC_BASE.to_le_bytes());
    put(&mut t, MADT_AT + 40, &1u32.to_le_bytes());
    put(&mut t, MADT_AT + 44, &[0, 8, 0, 0]);
    put(&mut t, MADT_AT + 48, &1u32.to_le_bytes());
    checksum(&mut t, MADT_AT, 52, 9);
    // XSDT and RSDT: the FADT, then the MADT.
    header(&mut t, XSDT_AT, b"XSDT", 52, 1);
    put(&mut t, XSDT_AT + 36, &gpa(FADT_AT).to_le_bytes());
    put(&mut t, XSDT_AT + 44, &gpa(MADT_AT).to_le_bytes());
    checksum(&mut t, XSDT_AT, 52, 9);
    header(&mut t, RSDT_AT, b"RSDT", 44, 1);
    put(&mut t, RSDT_AT + 36, &(gpa(FADT_AT) as u32).to_le_bytes());
    put(&mut t, RSDT_AT + 40, &(gpa(MADT_AT) as u32).to_le_bytes());
    checksum(&mut t, RSDT_AT, 44, 9);

    // RSDP, ACPI 2.0: the first 20 bytes checksummed, then all 36.
    let mut rsdp = [0u8; 36];
    put(&mut rsdp, 0, b"RSD PTR ");
    put(&mut rsdp, 9, &OEM_ID);
    rsdp[15] = 2;
    put(&mut rsdp, 16, &(gpa(RSDT_AT) as u32).to_le_bytes());
    put(&mut rsdp, 20, &36u32.to_le_bytes());
    put(&mut rsdp, 24, &gpa(XSDT_AT).to_le_bytes());
    checksum(&mut rsdp, 0, 20, 8);
    checksum(&mut rsdp, 0, 36, 32);

    // acpi_info: nr_cpus at 2, madt_csum_addr at 12, madt_lapic0_addr at 16.
    let mut info = [0u8; 40];
    put(&mut info, 2, &1u16.to_le_bytes());
    put(&mut info, 12, &(gpa(MADT_AT + 9) as u32).to_le_bytes());
    put(&mut info, 16, &(gpa(MADT_AT + 44) as u32).to_le_bytes());
    AcpiTables {
        info,
        tables: t,
        rsdp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |s, &x| s.wrapping_add(x))
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    /// The table at guest-physical `gpa` in the tables page, checked: signature, length
    /// inside the page, checksum zero.
    fn table(t: &[u8], gpa: u64, sig: &[u8; 4]) -> (usize, usize) {
        let at = usize::try_from(gpa - TABLES_GPA).unwrap();
        assert_eq!(&t[at..at + 4], sig);
        let len = u32_at(t, at + 4) as usize;
        assert!(at + len <= t.len(), "{sig:?} runs past the page");
        assert_eq!(sum(&t[at..at + len]), 0, "{sig:?} checksum");
        assert_eq!(at % 16, 0, "{sig:?} 16-aligned");
        (at, len)
    }

    #[test]
    fn a_kernel_finds_one_local_apic_from_the_rsdp() {
        let a = build();
        let r = &a.rsdp;
        assert_eq!(&r[..8], b"RSD PTR ");
        assert_eq!(sum(&r[..20]), 0, "ACPI 1.0 checksum");
        assert_eq!(sum(&r[..36]), 0, "extended checksum");
        assert_eq!(r[15], 2, "revision 2: the XSDT is used");
        let t = &a.tables;
        let (x, xlen) = table(t, u64_at(r, 24), b"XSDT");
        assert_eq!(xlen, 36 + 16);
        let (f, _) = table(t, u64_at(t, x + 36), b"FACP");
        assert_eq!(t[f + 8], 5, "FADT revision 5");
        assert_ne!(u32_at(t, f + 112) & (1 << 20), 0, "HW-reduced");
        table(t, u64_at(t, f + 140), b"DSDT");
        assert_eq!(&t[FACS_AT..FACS_AT + 4], b"FACS");
        let (m, mlen) = table(t, u64_at(t, x + 44), b"APIC");
        assert_eq!(u32_at(t, m + 36), 0xfee0_0000);
        assert_eq!(
            &t[m + 44..mlen + m],
            &[0, 8, 0, 0, 1, 0, 0, 0],
            "one enabled LAPIC"
        );
        let (rs, _) = table(t, u64::from(u32_at(r, 16)), b"RSDT");
        assert_eq!(u32_at(t, rs + 40), u32_at(t, x + 44));
        assert_eq!(u32_at(&a.info, 16) as u64, TABLES_GPA + (m + 44) as u64);
        assert_eq!(RSDP_GPA, 0xfc00_2000);
    }
}
