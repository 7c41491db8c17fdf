//! A new device identity, from the OS's random source only: nothing about
//! the host (its MAC, hostname or machine id) goes in, so two sessions, or
//! two hosts, never share one, and no identity says where it was made.
//!
//! - `device_id`: a random MAC address with the locally administered bit
//!   set and the multicast bit clear (IEEE 802: `x2:`, `x6:`, `xa:` or
//!   `xe:` first), in the firmware's lowercase colon form, so it cannot
//!   collide with a real board's burnt-in address and passes servers'
//!   MAC checks (`^([0-9A-Za-z]{2}[:-]){5}([0-9A-Za-z]{2})$`);
//! - `client_id`: a UUID version 4, lowercase, as the firmware makes one;
//! - `serial_number`: `SN-` + 8 random uppercase hex digits + `-` + the MAC
//!   without colons, e.g. `SN-1A2B3C4D-021a2b3c4d5e` (py-xiaozhi's shape,
//!   whose 8 digits are an MD5 of the MAC: here they are random);
//! - `hmac_key`: 32 random bytes as 64 lowercase hex characters (the form
//!   py-xiaozhi keeps), whose text keys the HMAC.

use uuid::Builder;
use wsvisor_actors::settings::HmacKey;

use super::Identity;

/// Random bytes from the OS (getrandom(2)); failing that the process
/// cannot make an identity at all, which is said, never papered over.
fn random<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes)?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh identity, stamped `created_at`.
pub(super) fn new_identity(created_at: String) -> Result<Identity, getrandom::Error> {
    let mut mac = random::<6>()?;
    // Locally administered (bit 1), unicast (bit 0 clear).
    mac[0] = (mac[0] & 0b1111_1100) | 0b0000_0010;
    let device_id = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    let client_id = Builder::from_random_bytes(random::<16>()?).into_uuid().to_string();
    let serial_number = format!("SN-{}-{}", hex(&random::<4>()?).to_uppercase(), hex(&mac));
    let hmac_key = HmacKey::new(hex(&random::<32>()?));
    Ok(Identity {
        device_id,
        client_id,
        serial_number,
        hmac_key,
        created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `aa:bb:cc:dd:ee:ff`, lowercase hex.
    fn is_mac(text: &str) -> bool {
        let parts: Vec<&str> = text.split(':').collect();
        parts.len() == 6
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    }

    /// A UUID in its hyphenated form.
    fn is_uuid(text: &str) -> bool {
        text.len() == 36 && uuid::Uuid::try_parse(text).is_ok()
    }

    #[test]
    fn identities_have_the_documented_shape() {
        let id = new_identity("t".into()).unwrap();
        assert!(is_mac(&id.device_id), "{}", id.device_id);
        let first = u8::from_str_radix(&id.device_id[..2], 16).unwrap();
        assert_eq!(first & 0b11, 0b10, "locally administered unicast: {}", id.device_id);
        let uuid = uuid::Uuid::try_parse(&id.client_id).unwrap();
        assert_eq!(uuid.get_version_num(), 4);
        assert_eq!(id.client_id, id.client_id.to_lowercase());
        let mac_plain = id.device_id.replace(':', "");
        let (prefix, rest) = id.serial_number.split_at(3);
        assert_eq!(prefix, "SN-");
        let (digits, tail) = rest.split_once('-').unwrap();
        assert_eq!(digits.len(), 8);
        assert!(digits.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
        assert_eq!(tail, mac_plain);
        let key = id.hmac_key.expose();
        assert_eq!(key.len(), 64);
        assert!(key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }

    #[test]
    fn no_two_are_alike() {
        let ids: Vec<Identity> = (0..64).map(|_| new_identity("t".into()).unwrap()).collect();
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(a.device_id, b.device_id);
                assert_ne!(a.client_id, b.client_id);
                assert_ne!(a.serial_number, b.serial_number);
                assert_ne!(a.hmac_key, b.hmac_key);
            }
        }
    }

    #[test]
    fn shapes_are_checked() {
        assert!(is_mac("02:1a:2b:3c:4d:5e"));
        assert!(!is_mac("02:1A:2b:3c:4d:5e"));
        assert!(!is_mac("02:1a:2b:3c:4d"));
        assert!(!is_mac("02-1a-2b-3c-4d-5e"));
        assert!(is_uuid("6f1c0b8e-0000-4000-8000-000000000001"));
        assert!(!is_uuid("6f1c0b8e00004000800000000000000001"));
    }
}
