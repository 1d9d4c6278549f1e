//! The MCUboot image parser and checks (`mcuboot_image`), and the slot
//! trailer.

use std::sync::OnceLock;

use mcuboot_image::header::IMAGE_HEADER_SIZE;
use mcuboot_image::trailer::{boot_decision, Trailer, TRAILER_SIZE};
use mcuboot_image::{parse, ImageHeader, SigningKey, TrustedKey};

/// The published development keys in `firmware/keys/`: the Ed25519 key the
/// reference images are signed with, and a P-256 one (the corpus holds
/// images signed with each, so the fuzzer starts from images that verify).
pub(crate) const ED25519_KEY_PEM: &str =
    include_str!("../../../firmware/keys/dev-image-signing-ed25519.pem");
pub(crate) const P256_KEY_PEM: &str =
    include_str!("../../../firmware/keys/shared-identity-p256.pem");

fn trusted_keys() -> &'static [TrustedKey] {
    static KEYS: OnceLock<Vec<TrustedKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        [ED25519_KEY_PEM, P256_KEY_PEM]
            .iter()
            .map(|pem| {
                SigningKey::from_pkcs8_pem(pem)
                    .expect("a development key in firmware/keys")
                    .trusted_key()
            })
            .collect()
    })
}

/// The MCUboot image parser (`mcuboot_image::parse`) and every check on
/// what it accepts, plus the slot trailer decoder on the input's tail.
///
/// Input: the bytes of a slot (an image, possibly followed by anything).
///
/// Asserts: no panic; a parsed header re-encodes (`to_bytes`) to the input's
/// first 28 bytes and parses back equal; a parsed image lies within the
/// input and is a prefix of it, its payload is `img_size` bytes right after
/// the header, its hashed region is a prefix of it, its TLVs lie inside it,
/// and it parses alone to the same image; `verify` passes exactly when the
/// hash, signature and security-counter checks each pass. A decoded trailer
/// re-encodes and decodes equal, and the boot decision on it is total.
pub fn mcuboot_image(data: &[u8]) {
    if let Ok(header) = ImageHeader::parse(data) {
        let bytes = header.to_bytes();
        assert_eq!(bytes[..28], data[..28], "header does not re-encode");
        assert_eq!(ImageHeader::parse(&bytes), Ok(header));
    }
    match parse(data) {
        Ok(image) => {
            let n = image.len();
            assert!(n <= data.len());
            assert_eq!(image.as_bytes(), &data[..n]);
            let header = *image.header();
            assert_eq!(Ok(header), ImageHeader::parse(data));
            assert!(usize::from(header.hdr_size) >= IMAGE_HEADER_SIZE);
            let hdr = usize::from(header.hdr_size);
            assert_eq!(image.payload().len(), header.img_size as usize);
            assert_eq!(image.payload(), &data[hdr..hdr + header.img_size as usize]);
            let hashed = image.hashed_region();
            assert!(hashed.len() >= hdr + image.payload().len() && hashed.len() <= n);
            assert_eq!(hashed, &data[..hashed.len()]);
            let mut previous_end = 0;
            for tlv in image.tlvs() {
                assert!(tlv.offset >= previous_end, "TLVs out of order");
                let end = tlv.offset + 4 + tlv.value.len();
                assert!(end <= n, "a TLV past the image");
                assert_eq!(tlv.protected, end <= hashed.len());
                previous_end = end;
            }
            let again = parse(image.as_bytes()).expect("an image parses alone");
            assert_eq!(again.len(), n);
            assert_eq!(again.hash_tlv(), image.hash_tlv());
            assert_eq!(again.key_id(), image.key_id());
            assert_eq!(again.security_counter(), image.security_counter());

            let keys = trusted_keys();
            let hash = image.check_hash().is_ok();
            let signature = image.check_signature(keys).is_ok();
            let counter = image.check_security_counter(1).is_ok();
            assert_eq!(
                image.verify(keys, 1).is_ok(),
                hash && signature && counter,
                "verify disagrees with the separate checks"
            );
            let _ = (image.version().to_string(), image.digest());
            let _ = image.check_signature_over_stored_hash(keys);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if data.len() >= TRAILER_SIZE {
        let trailer = Trailer::from_slot(data).expect("a trailer-sized tail decodes");
        assert_eq!(Trailer::decode(&trailer.encode()), Ok(trailer));
        let _ = (trailer.magic_state(), trailer.swap_type());
        for valid in [false, true] {
            let _ = boot_decision(&trailer, &Trailer::ERASED, valid);
            let _ = boot_decision(&Trailer::ERASED, &trailer, valid);
        }
    }
}
