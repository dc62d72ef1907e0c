//! The daemon's event batches as a client decodes them (from any daemon it connects to):
//! decoding, and decode → encode → decode giving the same events.
#![no_main]

use ig::daemon::wire::{batch_datasource, decode_batch, BatchEncoder};
use ig::event::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = batch_datasource(data);
    let mut scratch = Event { values: Vec::new() };
    let mut events = Vec::new();
    if decode_batch(data, &mut scratch, |e| {
        events.push(e.clone());
        true
    })
    .is_err()
    {
        return;
    }
    let mut enc = BatchEncoder::new(7);
    for e in &events {
        enc.push(e);
    }
    let Some((count, bytes)) = enc.take() else {
        assert!(events.is_empty());
        return;
    };
    assert_eq!(count as usize, events.len());
    assert_eq!(batch_datasource(&bytes), Ok(7));
    let mut again = Vec::new();
    decode_batch(&bytes, &mut scratch, |e| {
        again.push(e.clone());
        true
    })
    .expect("our own encoding decodes");
    assert_eq!(again, events);
});
