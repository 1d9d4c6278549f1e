//! Device twins: the desired and reported documents and their versions,
//! patched with RFC 7386 merge patches, each section bounded as IoT Hub's.

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{col, one, Res, RowFn, Store, StoreError, MAX_TWIN_SECTION};

/// Device twin; both documents are JSON objects, each section's $version starts at 1 (as IoT Hub's).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Twin {
    /// Desired properties, written by the back end (admin API).
    pub desired: Value,
    /// Version of the desired document; +1 per patch.
    pub desired_version: i64,
    /// Reported properties, written by the device.
    pub reported: Value,
    /// Version of the reported document; +1 per patch.
    pub reported_version: i64,
}

pub(super) fn twin_in(conn: &Connection, device_id: &str) -> Res<Twin> {
    let sql = "SELECT desired, desired_version, reported, reported_version FROM twins WHERE device_id = ?1";
    let f: RowFn<Twin> = |r| {
        let (desired, desired_version) = (col(r, 0, false)?, r.get(1)?);
        Ok(Twin {
            desired,
            desired_version,
            reported: col(r, 2, false)?,
            reported_version: r.get(3)?,
        })
    };
    one(conn, sql, [device_id], f)?.ok_or_else(|| StoreError::UnknownDevice(device_id.to_owned()))
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

impl Store {
    /// The device's twin ([`StoreError::UnknownDevice`] if it is not registered).
    pub fn twin(&self, device_id: &str) -> Res<Twin> {
        twin_in(&self.conn, device_id)
    }

    /// JSON merge patch (RFC 7386: null deletes a key, objects merge
    /// recursively) on desired; returns the new twin. Version +1 per patch.
    pub fn patch_desired(&mut self, device_id: &str, patch: &Value) -> Res<Twin> {
        self.patch_twin(device_id, patch, false)
    }

    /// Same as [`Store::patch_desired`], on the reported document.
    pub fn patch_reported(&mut self, device_id: &str, patch: &Value) -> Res<Twin> {
        self.patch_twin(device_id, patch, true)
    }

    fn patch_twin(&mut self, device_id: &str, patch: &Value, reported: bool) -> Res<Twin> {
        if !patch.is_object() {
            return Err(StoreError::NotAnObject);
        }
        let section = if reported { "reported" } else { "desired" };
        let too_large = |size: usize| StoreError::TwinTooLarge {
            section,
            size,
            max: MAX_TWIN_SECTION,
        };
        let size = patch.to_string().len();
        if size > MAX_TWIN_SECTION {
            return Err(too_large(size));
        }
        let tx = self.tx()?;
        let mut t = twin_in(&tx, device_id)?;
        let (doc, version) = match reported {
            true => (&mut t.reported, &mut t.reported_version),
            false => (&mut t.desired, &mut t.desired_version),
        };
        merge_patch(doc, patch);
        let size = doc.to_string().len();
        if size > MAX_TWIN_SECTION {
            return Err(too_large(size)); // the transaction rolls back
        }
        *version += 1;
        tx.execute(
            "UPDATE twins SET desired = ?2, desired_version = ?3, reported = ?4, reported_version = ?5 WHERE device_id = ?1",
            params![device_id, t.desired.to_string(), t.desired_version, t.reported.to_string(), t.reported_version],
        )?;
        tx.commit()?;
        Ok(t)
    }
}
