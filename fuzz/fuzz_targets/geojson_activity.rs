//! Any bytes through GeoJSON parsing and engine validation: no panic, and a
//! rejection always names at least one field.
#![no_main]

use deconflict_engine::{Engine, EngineConfig, PartyId};
use deconflict_formats::{activities_from_geojson, FormatErrors};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let engine = Engine::new(EngineConfig::default());
    match activities_from_geojson(text, PartyId(1)) {
        Ok(parsed) => {
            for activity in parsed {
                if let Err(FormatErrors(errors)) = activity.validate(&engine) {
                    assert!(!errors.is_empty());
                }
            }
        }
        Err(FormatErrors(errors)) => assert!(!errors.is_empty()),
    }
});
