//! The identity store on real files in a scratch directory.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::config;

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("wsvisor-identity-").tempdir().unwrap()
}

fn config_with(dir: &Path, sessions: &str) -> Config {
    let text = format!("[daemon]\nstate_dir = \"{}\"\n{sessions}", dir.display());
    config::parse(&dir.join("config.toml"), &text).unwrap()
}

const TWO_NEW: &str = "[[session]]\nname = \"kitchen\"\nota_url = \"http://127.0.0.1:9/xiaozhi/ota/\"\n\
                       [[session]]\nname = \"attic\"\nota_url = \"http://127.0.0.1:9/xiaozhi/ota/\"\n";

#[test]
fn the_state_dir_is_configured_else_systemds_else_the_default() {
    let configured = Path::new("/srv/wsvisor");
    assert_eq!(
        state_dir(Some(configured), Some(OsString::from("/var/lib/other"))),
        PathBuf::from("/srv/wsvisor")
    );
    assert_eq!(
        state_dir(None, Some(OsString::from("/var/lib/wsvisor:/var/lib/extra"))),
        PathBuf::from("/var/lib/wsvisor")
    );
    assert_eq!(state_dir(None, Some(OsString::new())), PathBuf::from(DEFAULT_STATE_DIR));
    assert_eq!(state_dir(None, None), PathBuf::from(DEFAULT_STATE_DIR));
}

#[test]
fn an_identity_is_made_once_and_read_back_byte_for_byte() {
    let dir = scratch();
    let store = IdentityStore::new(dir.path());
    assert!(store.read("kitchen").unwrap().is_none());
    let (made, created) = store.load_or_create("kitchen").unwrap();
    assert!(created);
    let path = store.file("kitchen");
    assert_eq!(path, dir.path().join("identity/kitchen.json"));
    let bytes = std::fs::read(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(store.dir()).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    let (again, created) = store.load_or_create("kitchen").unwrap();
    assert!(!created);
    assert_eq!(again, made);
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "reading never rewrites");
    let leftovers: Vec<_> = std::fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [OsString::from("kitchen.json")], "no temporary file stays");
    let text = String::from_utf8(bytes).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["format"], 1);
    assert_eq!(json["device_id"], made.device_id.as_str());
    assert_eq!(json["hmac_key"], made.hmac_key.expose());
    assert!(
        !format!("{made:?}").contains(made.hmac_key.expose()),
        "Debug hides the key"
    );
}

#[test]
fn a_corrupt_or_unreadable_file_is_an_error_naming_it_and_is_left_untouched() {
    let dir = scratch();
    let store = IdentityStore::new(dir.path());
    std::fs::create_dir_all(store.dir()).unwrap();
    let path = store.file("kitchen");
    let cases: [(&[u8], &str); 5] = [
        (b"{\"format\": 1, \"device_id\": \"02:00:00:00:00:01\",\n  \"client_id\": ", ":2:"),
        (b"not json at all", "not valid JSON"),
        (b"{\"format\": 1}", "missing key `device_id`"),
        (
            b"{\"format\": 1, \"device_id\": \"d\", \"client_id\": \"c\", \"serial_number\": \"s\", \"hmac_key\": 42}",
            "wrong type",
        ),
        (
            b"{\"format\": 9, \"device_id\": \"d\", \"client_id\": \"c\", \"serial_number\": \"s\", \"hmac_key\": \"k\"}",
            "format 9",
        ),
    ];
    for (content, expected) in cases {
        std::fs::write(&path, content).unwrap();
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        let err = store.load_or_create("kitchen").unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}:", path.display())), "{err}");
        assert!(err.contains(expected), "{expected:?} in {err}");
        assert!(err.contains("left untouched"), "{err}");
        assert!(!err.contains("42"), "never the content: {err}");
        assert_eq!(std::fs::read(&path).unwrap(), content);
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), before);
    }
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let err = store.load_or_create("kitchen").unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
    assert!(path.is_dir());
}

#[test]
fn a_state_dir_that_cannot_be_made_is_named() {
    let dir = scratch();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let store = IdentityStore::new(&blocker.join("state"));
    let err = store.load_or_create("kitchen").unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}:1:1: state_dir", blocker.join("state/identity").display())),
        "{err}"
    );
    assert!(err.contains("set [daemon] state_dir"), "{err}");
}

#[test]
fn settling_gives_two_sessions_two_identities_and_configured_ids_win() {
    let dir = scratch();
    let sessions = format!(
        "{TWO_NEW}[[session]]\nname = \"garage\"\nota_url = \"http://127.0.0.1:9/xiaozhi/ota/\"\n\
         device_id = \"aa:bb:cc:dd:ee:01\"\n\
         [[session]]\nname = \"porch\"\nurl = \"ws://h/\"\ndevice_id = \"aa:bb:cc:dd:ee:02\"\nclient_id = \"c-2\"\n"
    );
    let mut config = config_with(dir.path(), &sessions);
    assert_eq!(config.identities.len(), 3, "porch names both ids");
    assert!(config.session("kitchen").unwrap().device_id.is_empty(), "unsettled");
    let store = IdentityStore::for_daemon(&config.daemon);
    let settled = settle(&mut config, &store).unwrap();
    assert_eq!(settled.len(), 3);
    assert!(settled.iter().all(|s| s.created && s.exposed_mode.is_none()));
    let kitchen = config.session("kitchen").unwrap().clone();
    let attic = config.session("attic").unwrap().clone();
    assert_ne!(kitchen.device_id, attic.device_id);
    assert_ne!(kitchen.client_id, attic.client_id);
    let (kk, ak) = (kitchen.activation.key.unwrap(), attic.activation.key.unwrap());
    assert_ne!(kk.serial_number, ak.serial_number);
    assert_ne!(kk.hmac_key, ak.hmac_key);
    let garage = config.session("garage").unwrap();
    let stored = store.read("garage").unwrap().unwrap();
    assert_eq!(garage.device_id, "aa:bb:cc:dd:ee:01", "configured wins");
    assert_eq!(garage.client_id, stored.client_id, "the rest comes from the file");
    assert!(garage.activation.key.is_some());
    let porch = config.session("porch").unwrap();
    assert!(porch.activation.key.is_none(), "a v1 device");
    assert!(store.read("porch").unwrap().is_none(), "no file for it");
    assert_eq!(
        config.identities[0].file.as_deref(),
        Some(dir.path().join("identity/kitchen.json").as_path())
    );

    // The next start reads the same identities.
    let mut again = config_with(dir.path(), &sessions);
    let settled = settle(&mut again, &store).unwrap();
    assert!(settled.iter().all(|s| !s.created));
    assert_eq!(again.sessions, config.sessions);
}

#[test]
fn a_copied_identity_file_is_refused() {
    let dir = scratch();
    let mut config = config_with(dir.path(), TWO_NEW);
    let store = IdentityStore::new(dir.path());
    store.load_or_create("kitchen").unwrap();
    std::fs::copy(store.file("kitchen"), store.file("attic")).unwrap();
    let err = settle(&mut config, &store).unwrap_err().to_string();
    assert!(err.contains("would share its device_id"), "{err}");
}

#[test]
fn preview_writes_nothing_and_says_what_would_be_made() {
    let dir = scratch();
    let config = config_with(dir.path(), TWO_NEW);
    let store = IdentityStore::new(dir.path());
    store.load_or_create("kitchen").unwrap();
    let existing = store.read("kitchen").unwrap().unwrap();
    let lines = preview(&config, &store).unwrap();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].contains(&existing.device_id), "{}", lines[0]);
    assert!(lines[1].contains("does not exist yet"), "{}", lines[1]);
    assert!(!store.file("attic").exists());
    assert!(lines.iter().all(|l| !l.contains(existing.hmac_key.expose())));
}
