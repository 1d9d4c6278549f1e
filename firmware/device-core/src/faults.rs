//! The fault catalogue of `docs/CASES.md`: each switch makes the
//! reference device do exactly one wrong thing, so that the conformance case
//! it names is proven able to fail. All are off by default; the provisioning
//! file selects them (`faults = ["no-dedupe"]`).
//!
//! The names are stable: they appear in provisioning files, in the fault
//! matrix and in reports.

use core::fmt;

/// One fault switch of a reference implementation — the device's
/// ([`CATALOGUE`]) or the field gateway's — as the fault matrix, the case
/// catalogue and `--list-faults` see it. One type for both, so whatever
/// reads one catalogue reads the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSwitch {
    /// The stable name (provisioning files, `--fault`, reports).
    pub name: &'static str,
    /// The one wrong thing it makes the implementation do.
    pub effect: &'static str,
    /// Conformance case ids this fault must make fail.
    pub cases: &'static [&'static str],
}

impl fmt::Display for FaultSwitch {
    /// The `--list-faults` line: name, comma-separated cases, effect, in
    /// columns. Readers (xtask's fault matrix) split on whitespace and take
    /// the first two fields, so neither may contain a space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cases = self.cases.join(",");
        write!(f, "{:<20} {:<24} {}", self.name, cases, self.effect)
    }
}

macro_rules! catalogue {
    ($($f:ident $name:literal [$($case:literal),*] $effect:literal;)*) => {
        /// One deliberate defect of the reference device.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Fault {
            $(#[doc = $effect] $f,)*
        }

        impl Fault {
            /// Every fault, in catalogue order (the order of [`CATALOGUE`]).
            pub const ALL: &'static [Fault] = &[$(Fault::$f),*];
        }

        /// Every fault of the reference device, indexed by [`Fault`]'s discriminant.
        pub const CATALOGUE: &[FaultSwitch] = &[
            $(FaultSwitch { name: $name, effect: $effect, cases: &[$($case),*] },)*
        ];
    };
}

catalogue! {
    ListenDebug "listen-debug" ["NI-01", "NI-03", "NI-06"]
        "opens a TCP debug listener on port 2323 (all addresses, IPv4 and IPv6)";
    UdpDiscovery "udp-discovery" ["NI-02"]
        "answers UDP discovery probes on port 5683 (CoAP) and 1900 (SSDP)";
    ListenAtBoot "listen-at-boot" ["NI-03", "NI-05"]
        "listens on TCP 8080 for the first 10 s after power-on, then closes it";
    ExtraDestination "extra-destination" ["NI-04"]
        "also opens a TCP connection to an address that is neither hub nor gateway";
    PlaintextHello "plaintext-hello" ["MT-01"]
        "sends a cleartext hello line on the TCP connection before the TLS ClientHello";
    AllowTls10 "allow-tls10" ["MT-02"]
        "completes a handshake with a hub that offers only TLS 1.0/1.1 (reports accepting it)";
    WeakCiphers "weak-ciphers" ["MT-03"]
        "offers NULL, RC4 and 3DES suites in its ClientHello besides the AEAD ones";
    NoClientCert "no-client-cert" ["MT-04"]
        "presents no client certificate";
    NoServerVerify "no-server-verify" ["MT-05", "MT-07", "MT-08", "MT-09"]
        "accepts any hub certificate chain (untrusted, expired, not yet valid, self-signed)";
    NoHostnameCheck "no-hostname-check" ["MT-06"]
        "verifies the hub's chain but not its host name";
    TightReconnect "tight-reconnect" ["MT-12", "CD-11", "CD-16"]
        "reconnects every 100 ms without backoff or jitter";
    SharedIdentity "shared-identity" ["MT-13"]
        "uses a fixed key pair baked into the firmware, shared by every device";
    NoSni "no-sni" ["MT-14"]
        "sends no SNI extension";
    RotateSameKey "rotate-same-key" ["KR-01"]
        "re-enrols with a CSR for its current key instead of a new one";
    KeepOldCert "keep-old-cert" ["KR-02"]
        "after a successful re-enrolment keeps connecting with the old certificate";
    LeakKeyInCsr "leak-key-in-csr" ["KR-03"]
        "puts the new private key (PKCS#8 DER) into the CSR as an extra attribute";
    RotateNonAtomic "rotate-non-atomic" ["KR-04"]
        "writes the new certificate over the old one before the new key is stored";
    IgnoreTwinRotate "ignore-twin-rotate" ["KR-05"]
        "ignores credentials.rotateAfter in desired properties";
    DropCredOnError "drop-cred-on-error" ["KR-06"]
        "erases its current credential when the hub refuses the re-enrolment";
    SkipSignature "skip-signature" ["OTA-02"]
        "does not check the image signature";
    SkipHash "skip-hash" ["OTA-03"]
        "does not check the image SHA-256";
    ConfirmAtBoot "confirm-at-boot" ["OTA-04", "OTA-05"]
        "confirms a test image as soon as it starts, before it reaches the hub";
    AllowDowngrade "allow-downgrade" ["OTA-06"]
        "accepts an image whose security counter is lower than the running one";
    NoResume "no-resume" ["OTA-07", "OTA-09"]
        "restarts an interrupted download from byte 0 and keeps no partial download across power loss";
    UnsafeSwap "unsafe-swap" ["OTA-08"]
        "swaps slots in place without a scratch copy or progress record";
    OtaOverHttp "ota-over-http" ["OTA-10"]
        "downloads firmware over cleartext HTTP on port 80";
    NoResubscribe "no-resubscribe" ["CD-01", "CD-02", "CD-10", "CD-13", "CD-14", "CD-15"]
        "subscribes to commands only in its first session ever (remembered in flash), not after reconnects or reboots";
    NoDedupe "no-dedupe" ["CD-06", "CD-10", "CD-22"]
        "applies a redelivered command again instead of by $.mid once";
    AckBeforePersist "ack-before-persist" ["CD-12"]
        "sends PUBACK before the command is applied and recorded";
    // MT: the hub's certificate chain (MT-15…23; MT-24 too).
    ChainSignaturesOnly "chain-signatures-only" ["MT-15", "MT-16", "MT-17", "MT-18", "MT-19", "MT-20", "MT-24"]
        "checks only the signatures and dates along the hub's chain to its trust anchor (no basicConstraints, pathLen, key usage, EKU, name constraints or critical extensions), and the host name";
    LooseWildcard "loose-wildcard" ["MT-21"]
        "matches a wildcard in the hub's certificate across labels and partial labels (*.test matches hub.sacbench.test)";
    TrustPresentedCa "trust-presented-ca" ["MT-17", "MT-22"]
        "treats any CA certificate the hub presents as a trust anchor (partial-chain misuse)";
    SmallTlsBuffer "small-tls-buffer" ["MT-23"]
        "refuses a hub Certificate message larger than its 4 KB TLS input buffer (an mbedTLS build with a 4 KB input buffer)";
    // OTA, the FreeRTOS OTA end-to-end set (issue 15).
    ReinstallSameVersion "reinstall-same-version" ["OTA-11"]
        "treats a desired firmware naming the running version as an update: downloads it and reboots into it again";
    OneUpdatePerBoot "one-update-per-boot" ["OTA-12"]
        "keeps its update-in-progress flag after confirming an update: refuses the next one until it reboots";
    TrustAnnouncedHash "trust-announced-hash" ["OTA-13", "OTA-14"]
        "accepts an image once it matches the twin's SHA-256 and size, without checking its MCUboot structure, own hash or signature";
    AnyBoard "any-board" ["OTA-15"]
        "ignores the image's board identity: installs an image built for another board";
    AnyKnownSigner "any-known-signer" ["OTA-16"]
        "accepts an image signed by any key it knows (its TLS trust anchor's too), not only by its firmware signing key";
    IgnoreCancel "ignore-cancel" ["OTA-17"]
        "keeps downloading and installs an update whose desired firmware went back to the running version";
    RetryRevertedImage "retry-reverted-image" ["OTA-18"]
        "forgets an image the bootloader reverted: installs the same image again at its next session";
    // CD, server-side trouble and the session/twin after reconnection (CD-13…CD-20).
    NoConnackTimeout "no-connack-timeout" ["CD-16"]
        "waits forever for a CONNACK (no timeout on a CONNECT the hub does not answer)";
    TrustSessionPresent "trust-session-present" ["CD-17"]
        "connects with a persistent session and, on reconnects, relies on it: no SUBSCRIBE even when CONNACK says session-present 0";
    NoTwinGet "no-twin-get" ["CD-18"]
        "does not GET the twin after a reconnect (misses desired changes made while it was offline)";
    ApplyStaleTwin "apply-stale-twin" ["CD-19"]
        "applies desired properties whatever their $version (a stale GET response or patch too)";
    // KR renewal on the device's own clock (issue 15, krclock).
    NoRenewal "no-renewal" ["KR-07"]
        "renews its certificate only when asked (method, twin), never as it nears expiry";
    RotateNewSubject "rotate-new-subject" ["KR-08"]
        "puts a generated name instead of its certificate's subject in the re-enrolment CSR";
    // MT: more of the hub's certificate chain (issue 15, mtmore: MT-24…26).
    LeafDatesOnly "leaf-dates-only" ["MT-25"]
        "checks validity dates on the hub's own certificate only, not on the intermediates above it";
    StrictChainOrder "strict-chain-order" ["MT-26"]
        "refuses a hub Certificate message whose certificates are not each certified by the next (no reordering, no extra certificates)";
    // CD, a malformed command (CD-21).
    PanicOnBadCommand "panic-on-bad-command" ["CD-21"]
        "parses a command's payload as UTF-8 text with an unchecked unwrap: a payload that is not aborts the device (the watchdog restarts it, the command redelivered again and again)";
    // CD, one connection per identity (CD-20).
    RetakeIdentity "retake-identity" ["CD-20"]
        "reconnects at once, without backoff, whenever the hub ends a live session (as IoT Hub does when another device connects with the same identity): two units sharing an identity take it from each other in a tight loop";
    // MT-13's two-board form.
    BakedIdentity "baked-identity" ["MT-13"]
        "uses a fixed key pair baked into the firmware and shared by every unit, one no case is told of (only two units side by side show it)";
}

impl Fault {
    /// Its catalogue entry.
    pub fn info(self) -> &'static FaultSwitch {
        &CATALOGUE[self as usize]
    }

    /// Its catalogue name.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The fault with this catalogue name.
    pub fn from_name(name: &str) -> Option<Fault> {
        Fault::ALL.iter().copied().find(|f| f.name() == name)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of faults (a bit per [`Fault`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultSet(u64);

impl FaultSet {
    /// No fault: the correct device.
    pub const NONE: FaultSet = FaultSet(0);

    /// This set with `fault` switched on too.
    pub fn with(self, fault: Fault) -> FaultSet {
        FaultSet(self.0 | 1 << fault as u8)
    }

    /// Whether `fault` is switched on.
    pub fn has(self, fault: Fault) -> bool {
        self.0 & (1 << fault as u8) != 0
    }

    /// Whether no fault is on.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The faults switched on, in catalogue order.
    pub fn iter(self) -> impl Iterator<Item = Fault> {
        Fault::ALL.iter().copied().filter(move |f| self.has(*f))
    }

    /// Parses catalogue names; the error is the first unknown name.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<FaultSet, &'a str> {
        names.into_iter().try_fold(FaultSet::NONE, |set, n| {
            Fault::from_name(n).map(|f| set.with(f)).ok_or(n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_indexed_by_discriminant_and_names_are_unique() {
        assert_eq!(Fault::ALL.len(), CATALOGUE.len());
        for (i, (fault, info)) in Fault::ALL.iter().zip(CATALOGUE).enumerate() {
            assert_eq!(*fault as usize, i, "{} out of order", info.name);
            assert_eq!(fault.info(), info);
            assert_eq!(Fault::from_name(info.name), Some(*fault));
            assert!(!info.name.contains(' ') && !info.cases.iter().any(|c| c.contains(' ')));
            assert!(!info.cases.is_empty(), "{} catches nothing", info.name);
            assert_eq!(CATALOGUE.iter().filter(|o| o.name == info.name).count(), 1);
        }
        assert!(CATALOGUE.len() < 64, "FaultSet is a u64");
    }

    #[test]
    fn a_list_line_is_name_cases_effect_in_columns() {
        let line = alloc::format!("{}", Fault::NoDedupe.info());
        assert_eq!(
            line,
            "no-dedupe            CD-06,CD-10,CD-22        applies a redelivered command again instead of by $.mid once"
        );
        let mut fields = line.split_whitespace();
        assert_eq!(fields.next(), Some("no-dedupe"));
        assert_eq!(fields.next(), Some("CD-06,CD-10,CD-22"));
    }

    #[test]
    fn sets_parse_and_iterate() {
        let set = FaultSet::from_names(["no-dedupe", "no-sni"]).unwrap();
        assert!(set.has(Fault::NoDedupe) && set.has(Fault::NoSni) && !set.has(Fault::ListenDebug));
        assert_eq!(set.iter().count(), 2);
        assert_eq!(FaultSet::from_names(["no-dedupe", "bogus"]), Err("bogus"));
        assert!(FaultSet::NONE.is_empty());
    }

    #[test]
    fn every_device_case_of_the_catalogue_has_a_fault() {
        // The device cases of docs/CASES.md that name a fault.
        let cases = [
            "NI-01", "NI-02", "NI-03", "NI-04", "NI-05", "NI-06", "MT-01", "MT-02", "MT-03",
            "MT-04", "MT-05", "MT-06", "MT-07", "MT-08", "MT-09", "MT-12", "MT-13", "MT-14",
            "KR-01", "KR-02", "KR-03", "KR-04", "KR-05", "KR-06", "OTA-02", "OTA-03", "OTA-04",
            "OTA-05", "OTA-06", "OTA-07", "OTA-08", "OTA-09", "OTA-10", "CD-01", "CD-02", "CD-06",
            "CD-10", "CD-11", "CD-12",
            // Issue 15: the hub's chain, renewal, the FreeRTOS OTA set, server-side trouble.
            "MT-15", "MT-16", "MT-17", "MT-18", "MT-19", "MT-20", "MT-21", "MT-22", "MT-23",
            "KR-07", "KR-08", "OTA-11", "OTA-12", "OTA-13", "OTA-14", "OTA-15", "OTA-16", "OTA-17",
            "OTA-18", "CD-13", "CD-14", "CD-15", "CD-16", "CD-17", "CD-18", "CD-19", "MT-24",
            "MT-25", "MT-26", "CD-21", "CD-20",
        ];
        for case in cases {
            assert!(
                CATALOGUE.iter().any(|i| i.cases.contains(&case)),
                "{case} has no fault"
            );
        }
    }
}
