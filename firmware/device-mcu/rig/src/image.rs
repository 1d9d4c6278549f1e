//! The app as the board boots it (issue 17 §1): its ELF's loadable bytes as
//! a raw payload, signed into an MCUboot image (header `HEADER_SIZE`,
//! version `IMAGE_VERSION`, SHA-256 and an ed25519 signature by the
//! development key, firmware/keys/dev-image-signing-ed25519.pem — the key
//! whose public half the boot stage has built in), and the board's flash
//! file with that image in the primary slot, as a factory flashes a unit.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use mcuboot_image::sign::{sign, PadTrailer, SignOptions, SigningKey};
use mcuboot_image::ImageVersion;
use object::elf::{FileHeader32, EM_ARM, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::LittleEndian;

use crate::flashmap::{
    APP_ADDR, FLASH_SIZE, HEADER_SIZE, PRIMARY, PRIMARY_ADDR, SECTOR_SIZE, SLOT_SIZE,
};
use crate::Error;

/// The version the images carry (MCUboot header `1.0.0+0`).
pub const IMAGE_VERSION: ImageVersion = ImageVersion::new(1, 0, 0, 0);
/// The boot stage's ELF, beside the app images `build` makes.
pub const BOOT_STAGE: &str = "device-mcu-boot";

/// The development image-signing key (PKCS#8 PEM).
pub fn signing_key_path() -> PathBuf {
    crate::firmware_dir().join("../keys/dev-image-signing-ed25519.pem")
}

/// Loads the development image-signing key.
pub fn signing_key() -> Result<SigningKey, Error> {
    let path = signing_key_path();
    let pem = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| format!("{}: {e:?}", path.display()))
}

/// The bytes of `elf`'s loadable segments, by load (physical) address, as
/// `objcopy -O binary` lays them out (gaps erased, 0xff): the payload of
/// the image. It must start at `APP_ADDR` (the app linked for the primary
/// slot, memory.x) and end before the slot's trailer sector.
pub fn elf_payload(elf: &[u8]) -> Result<Vec<u8>, Error> {
    let header = FileHeader32::<LittleEndian>::parse(elf)
        .map_err(|e| format!("not a 32-bit little-endian ELF: {e}"))?;
    let endian = header.endian().map_err(|e| format!("ELF: {e}"))?;
    if header.e_machine(endian) != EM_ARM {
        return Err(format!(
            "ELF machine {} is not ARM",
            header.e_machine(endian)
        ));
    }
    let headers = header
        .program_headers(endian, elf)
        .map_err(|e| format!("ELF program headers: {e}"))?;
    let mut segments = Vec::new();
    for ph in headers {
        if ph.p_type(endian) != PT_LOAD || ph.p_filesz(endian) == 0 {
            continue;
        }
        let bytes = ph
            .data(endian, elf)
            .map_err(|()| format!("ELF segment at {:#x}: outside the file", ph.p_paddr(endian)))?;
        segments.push((ph.p_paddr(endian), bytes));
    }
    segments.sort_by_key(|(addr, _)| *addr);
    let Some(&(first, _)) = segments.first() else {
        return Err("ELF without loadable bytes".into());
    };
    if first != APP_ADDR {
        return Err(format!(
            "ELF loads at {first:#010x}, not at {APP_ADDR:#010x} (the primary slot after the \
             {HEADER_SIZE:#x}-byte header): not linked for the board's flash map"
        ));
    }
    let limit = u64::from(PRIMARY_ADDR + SLOT_SIZE - SECTOR_SIZE);
    let mut payload = Vec::new();
    for (addr, bytes) in segments {
        let end = u64::from(addr) + bytes.len() as u64;
        if end > limit {
            return Err(format!(
                "ELF segment {addr:#010x}..{end:#010x} reaches past the primary slot's image \
                 area (ends at {limit:#010x})"
            ));
        }
        let at = (addr - APP_ADDR) as usize;
        if at < payload.len() {
            return Err(format!("ELF segments overlap at {addr:#010x}"));
        }
        payload.resize(at, 0xff);
        payload.extend_from_slice(bytes);
    }
    Ok(payload)
}

/// `elf` as a signed MCUboot image for the primary slot, by `key`,
/// version `IMAGE_VERSION`.
pub fn sign_app(elf: &[u8], key: &SigningKey) -> Result<Vec<u8>, Error> {
    sign_app_as(elf, key, IMAGE_VERSION, None)
}

/// As `sign_app`, with `version`, and with `pad`: the image padded to a
/// whole slot whose trailer asks for that swap (imgtool `--pad`), as an
/// update is written into the secondary slot.
pub fn sign_app_as(
    elf: &[u8],
    key: &SigningKey,
    version: ImageVersion,
    pad: Option<PadTrailer>,
) -> Result<Vec<u8>, Error> {
    let payload = elf_payload(elf)?;
    let opts = SignOptions {
        version,
        header_size: HEADER_SIZE as u16,
        slot_size: Some(SLOT_SIZE),
        pad,
        ..SignOptions::default()
    };
    sign(&payload, key, &opts).map_err(|e| format!("signing: {e}"))
}

/// `elf_path` signed by the development key.
pub fn sign_app_file(elf_path: &Path) -> Result<Vec<u8>, Error> {
    let elf = fs::read(elf_path).map_err(|e| format!("{}: {e}", elf_path.display()))?;
    sign_app(&elf, &signing_key()?).map_err(|e| format!("{}: {e}", elf_path.display()))
}

/// A whole erased flash (0xff) with `image` at the primary slot's start.
pub fn factory_flash(image: &[u8]) -> Result<Vec<u8>, Error> {
    if image.len() > (SLOT_SIZE - SECTOR_SIZE) as usize {
        return Err(format!(
            "an image of {} bytes does not fit the primary slot ({} bytes before its trailer sector)",
            image.len(),
            SLOT_SIZE - SECTOR_SIZE
        ));
    }
    let mut flash = vec![0xff; FLASH_SIZE as usize];
    let at = PRIMARY as usize;
    flash[at..at + image.len()].copy_from_slice(image);
    Ok(flash)
}

/// The unit's flash file at `path`: made from `image` (`factory_flash`) if
/// it does not exist — the factory flashing a new unit; returns `true` then
/// — and otherwise kept exactly as the board left it (`false`), after
/// checking it is a whole flash. Made whole or not at all: written beside,
/// then hard-linked into place (which never replaces a file another
/// power-on made first).
pub fn flash_once(path: &Path, image: &[u8]) -> Result<bool, Error> {
    match fs::metadata(path) {
        Ok(m) if m.len() == u64::from(FLASH_SIZE) => return Ok(false),
        Ok(m) => {
            return Err(format!(
            "{}: {} bytes, the board's flash is {FLASH_SIZE} (remove it to flash the unit anew)",
            path.display(),
            m.len()
        ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    let bytes = factory_flash(image)?;
    let tmp = path.with_extension(format!("part-{}", std::process::id()));
    let written = (|| {
        let _ = fs::remove_file(&tmp);
        let mut f = fs::File::create_new(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        match fs::hard_link(&tmp, path) {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
            Ok(()) => Ok(true),
        }
    })();
    let _ = fs::remove_file(&tmp);
    written.map_err(|e| format!("{}: {e}", path.display()))
}

/// What a power-on did to the unit's flash (`flash_unit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flashing {
    /// A new unit: the flash made, the image in its primary slot.
    New,
    /// The flash kept exactly as the board left it: it was flashed with
    /// this very image before.
    Kept,
    /// The unit was flashed with another image (another fault set, a new
    /// build): the primary slot rewritten with this one — as a programmer
    /// writes one partition — and everything else kept.
    Reflashed,
}

/// The unit's flash file `flash`, flashed with `image` at its first
/// power-on (`flash_once`) and again whenever the image asked for is not
/// the one it was last flashed with; `record` (beside it) names that one by
/// its SHA-256. Everything the board wrote outside the primary slot stays.
pub fn flash_unit(flash: &Path, record: &Path, image: &[u8]) -> Result<Flashing, Error> {
    use sha2::{Digest, Sha256};
    let digest: String = Sha256::digest(image)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let line = format!("sha256:{digest}\n");
    let done = if flash_once(flash, image)? {
        Flashing::New
    } else {
        match fs::read_to_string(record) {
            Ok(text) if text == line => return Ok(Flashing::Kept),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", record.display())),
        }
        write_primary(flash, image)?;
        Flashing::Reflashed
    };
    fs::write(record, line).map_err(|e| format!("{}: {e}", record.display()))?;
    Ok(done)
}

/// Rewrites the primary slot of the flash file `flash`: `image`, then
/// erased bytes to the slot's end (its trailer too: a new image starts
/// with no swap state).
fn write_primary(flash: &Path, image: &[u8]) -> Result<(), Error> {
    use std::io::{Seek, SeekFrom};
    let mut slot = factory_flash(image)?;
    slot.truncate((PRIMARY + SLOT_SIZE) as usize);
    let slot = &slot[PRIMARY as usize..];
    (|| {
        let mut f = fs::OpenOptions::new().write(true).open(flash)?;
        f.seek(SeekFrom::Start(u64::from(PRIMARY)))?;
        f.write_all(slot)?;
        f.sync_all()
    })()
    .map_err(|e| format!("{}: {e}", flash.display()))
}

/// QEMU's arguments that make the PSRAM at 0x2100_0000 the file `flash`:
/// a shared file mapping, so every write the board makes is in the file at
/// once and stays there when QEMU is killed.
pub fn flash_args(flash: &Path) -> [String; 4] {
    [
        "-object".into(),
        format!(
            "memory-backend-file,id=flash,size={FLASH_SIZE},mem-path={},share=on",
            flash.display().to_string().replace(',', ",,")
        ),
        "-machine".into(),
        "memory-backend=flash".into(),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use mcuboot_image::{parse, TrustedKey};

    fn key() -> SigningKey {
        signing_key().unwrap()
    }

    /// A minimal ELF32 ARM executable with `segments` as PT_LOAD (paddr,
    /// bytes; an empty one is a .bss-like segment with memsz 16).
    fn elf(segments: &[(u32, &[u8])]) -> Vec<u8> {
        let phoff = 52u32;
        let mut data_off = phoff + 32 * segments.len() as u32;
        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0");
        for v in [2u16, EM_ARM] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [1u32, APP_ADDR | 1, phoff, 0, 0x0500_0200] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [52u16, 32, segments.len() as u16, 40, 0, 0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let mut bodies = Vec::new();
        for (addr, bytes) in segments {
            let mem = if bytes.is_empty() {
                16
            } else {
                bytes.len() as u32
            };
            for v in [
                PT_LOAD,
                data_off,
                *addr,
                *addr,
                bytes.len() as u32,
                mem,
                5,
                4,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            data_off += bytes.len() as u32;
            bodies.extend_from_slice(bytes);
        }
        out.extend_from_slice(&bodies);
        out
    }

    #[test]
    fn payload_is_the_segments_by_load_address_with_gaps_erased() {
        let e = elf(&[
            (APP_ADDR + 8, &[3, 4]),
            (APP_ADDR, &[1, 2]),
            (0x2000_0000, &[]),
        ]);
        assert_eq!(
            elf_payload(&e).unwrap(),
            [1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 3, 4]
        );
    }

    #[test]
    fn an_elf_not_linked_for_the_primary_slot_is_refused() {
        let e = elf(&[(0x0, &[1, 2, 3, 4])]);
        let err = elf_payload(&e).unwrap_err();
        assert!(
            err.contains("not linked for the board's flash map"),
            "{err}"
        );
        let big = vec![0u8; SLOT_SIZE as usize];
        let err = elf_payload(&elf(&[(APP_ADDR, &big)])).unwrap_err();
        assert!(err.contains("past the primary slot"), "{err}");
        let err = elf_payload(&elf(&[(APP_ADDR, &[1, 2, 3]), (APP_ADDR + 2, &[9])])).unwrap_err();
        assert!(err.contains("overlap"), "{err}");
        assert!(elf_payload(b"not an elf").is_err());
    }

    #[test]
    fn the_signed_image_verifies_with_the_boot_stages_key() {
        let payload = [0x5au8; 1000];
        let image = sign_app(&elf(&[(APP_ADDR, &payload)]), &key()).unwrap();
        let parsed = parse(&image).unwrap();
        assert_eq!(u32::from(parsed.header().hdr_size), HEADER_SIZE);
        assert_eq!(parsed.version(), IMAGE_VERSION);
        assert_eq!(parsed.payload(), payload);
        parsed.check_hash().unwrap();
        let pub_pem = crate::firmware_dir().join("../keys/dev-image-signing-ed25519.pub.pem");
        let trusted = TrustedKey::from_pem(&fs::read_to_string(pub_pem).unwrap()).unwrap();
        parsed.check_signature(&[trusted]).unwrap();
    }

    #[test]
    fn a_unit_is_flashed_anew_only_with_another_image_and_keeps_the_rest() {
        let dir = std::env::temp_dir().join(format!("devmcu-flash-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let (flash, record) = (dir.join("flash.bin"), dir.join("flash.image"));
        let a = sign_app(&elf(&[(APP_ADDR, &[1; 64])]), &key()).unwrap();
        let b = sign_app(&elf(&[(APP_ADDR, &[2; 32])]), &key()).unwrap();
        assert_eq!(flash_unit(&flash, &record, &a).unwrap(), Flashing::New);
        // The board writes its boot data and a trailer byte in the slot.
        let mut f = fs::read(&flash).unwrap();
        f[0x20_5000] = 7;
        f[SLOT_SIZE as usize - 1] = 0;
        fs::write(&flash, &f).unwrap();
        assert_eq!(flash_unit(&flash, &record, &a).unwrap(), Flashing::Kept);
        assert_eq!(fs::read(&flash).unwrap(), f);
        assert_eq!(
            flash_unit(&flash, &record, &b).unwrap(),
            Flashing::Reflashed
        );
        let g = fs::read(&flash).unwrap();
        assert_eq!(&g[..b.len()], b.as_slice());
        assert!(g[b.len()..SLOT_SIZE as usize].iter().all(|x| *x == 0xff));
        assert_eq!(g[SLOT_SIZE as usize..], f[SLOT_SIZE as usize..]);
        assert_eq!(flash_unit(&flash, &record, &b).unwrap(), Flashing::Kept);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_factory_flash_is_erased_but_for_the_primary_image_and_made_once() {
        let image = sign_app(&elf(&[(APP_ADDR, &[7; 64])]), &key()).unwrap();
        let flash = factory_flash(&image).unwrap();
        assert_eq!(flash.len(), FLASH_SIZE as usize);
        assert_eq!(&flash[..image.len()], image.as_slice());
        assert!(flash[image.len()..].iter().all(|b| *b == 0xff));

        let dir = std::env::temp_dir().join(format!("devmcu-flash-once-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("flash.bin");
        assert!(flash_once(&path, &image).unwrap());
        // The board writes; the next power-on keeps it.
        let mut f = fs::read(&path).unwrap();
        f[0x20_5000] = 0x42;
        fs::write(&path, &f).unwrap();
        assert!(!flash_once(&path, &image).unwrap());
        assert_eq!(fs::read(&path).unwrap()[0x20_5000], 0x42);
        // Not a whole flash: an error naming it.
        fs::write(&path, b"short").unwrap();
        let err = flash_once(&path, &image).unwrap_err();
        assert!(err.contains("flash.bin: 5 bytes"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
