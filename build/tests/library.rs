//! The build through the library alone, as a program embedding rbuild
//! would call it: a typed request in, a typed result and events out, a
//! cached rebuild recorded as cached, cancellation. `FROM scratch` with
//! COPY: no registry, no sandbox; as root (COPY gives the files to root,
//! as BuildKit does), as the README's test command runs. The crate's unit
//! tests need no root.

use std::sync::{Arc, Mutex};

use rbuild_build::epoch::SourceDateEpoch;
use rbuild_build::{
    BuildError, BuildRequest, CancelToken, Event, Output, Session, StepId, StepStatus,
};
use rbuild_registry::ClientOptions;

/// A context with a Dockerfile that copies one file, and a store.
fn setup() -> (tempfile::TempDir, Session, BuildRequest) {
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("ctx");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(context.join("hello.txt"), "hello\n").unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY hello.txt /hello.txt\nCMD [\"/hello\"]\n",
    )
    .unwrap();
    let session = Session::open(&dir.path().join("store"), ClientOptions::default()).unwrap();
    let request = BuildRequest {
        dockerfile: context.join("Dockerfile"),
        context,
        tags: vec![String::from("hello:v1")],
        source_date_epoch: SourceDateEpoch::Seconds(0),
        max_parallel_runs: 1,
        ..BuildRequest::default()
    };
    (dir, session, request)
}

/// A sink that keeps every event.
fn recording() -> (Arc<Mutex<Vec<Event>>>, rbuild_build::EventSink) {
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = {
        let seen = seen.clone();
        Arc::new(move |e| seen.lock().unwrap().push(e))
    };
    (seen, sink)
}

#[test]
fn a_rebuild_is_the_same_image_with_its_steps_recorded_as_cached() {
    let (dir, session, mut request) = setup();
    let out = dir.path().join("rootfs");
    request.outputs = vec![Output::Local { dest: out.clone() }];
    let (seen, sink) = recording();
    let first = rbuild_build::build(&session, &request, sink, &CancelToken::new()).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("hello.txt")).unwrap(),
        "hello\n"
    );
    let copy = |r: &rbuild_build::BuildResult| {
        r.steps
            .iter()
            .find(|s| s.name.contains("COPY hello.txt"))
            .map(|s| s.status)
            .expect("the COPY step is recorded")
    };
    assert!(matches!(copy(&first), StepStatus::Done(_)));
    assert!(
        first
            .steps
            .iter()
            .any(|s| s.step == StepId::Own(2) && s.name == "exporting to image")
    );
    let events = seen.lock().unwrap().clone();
    assert!(events.iter().any(|e| matches!(e,
        Event::Log { line, .. } if String::from_utf8_lossy(line).contains(&format!("writing image {} done", first.digest()))
    )));
    assert_eq!(
        session
            .store
            .resolve_tag("hello:v1")
            .unwrap()
            .unwrap()
            .digest(),
        first.manifest.digest()
    );

    let (_, sink) = recording();
    let again = rbuild_build::build(&session, &request, sink, &CancelToken::new()).unwrap();
    assert_eq!(copy(&again), StepStatus::Cached);
    assert_eq!(again.digest(), first.digest(), "SOURCE_DATE_EPOCH=0 twice");
    assert_eq!(again.image_id, first.image_id);
    let metadata: serde_json::Value = serde_json::from_slice(&again.metadata_json()).unwrap();
    assert_eq!(metadata["containerimage.digest"], again.digest().as_str());
    assert_eq!(metadata["image.name"], "hello:v1");
}

#[test]
fn a_cancelled_build_stops_before_it_solves() {
    let (_dir, session, request) = setup();
    let cancel = CancelToken::new();
    cancel.cancel();
    let (seen, sink) = recording();
    let err = rbuild_build::build(&session, &request, sink, &cancel).unwrap_err();
    assert!(matches!(err, BuildError::Cancelled), "{err}");
    assert!(
        !seen.lock().unwrap().iter().any(|e| matches!(
            e,
            Event::Started {
                step: StepId::Vertex(_),
                ..
            }
        )),
        "no step of the graph started"
    );
    assert!(session.store.resolve_tag("hello:v1").unwrap().is_none());
}

#[test]
fn layers_exported_at_once_keep_their_order() {
    let (_dir, session, mut request) = setup();
    let mut dockerfile = String::from("FROM scratch\n");
    for i in 0..20 {
        let dir = request.context.join(format!("l{i:02}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("f.txt"), format!("layer {i}\n")).unwrap();
        dockerfile.push_str(&format!("COPY l{i:02} /l{i:02}\n"));
    }
    std::fs::write(&request.dockerfile, dockerfile).unwrap();
    request.tags = vec![String::from("layers:v1")];
    let (_, sink) = recording();
    let result = rbuild_build::build(&session, &request, sink, &CancelToken::new()).unwrap();
    let digest = result.manifest.digest().as_ref();
    let image = rbuild_exporter::StoredImage::read(&session.store, digest).unwrap();
    assert_eq!(image.layers.len(), 20);
    for (i, layer) in image.layers.iter().enumerate() {
        let tar = session.store.read_blob(&layer.blob.digest).unwrap();
        let holds = |j: usize| {
            let name = format!("l{j:02}/f.txt");
            tar.windows(name.len()).any(|w| w == name.as_bytes())
        };
        assert!(holds(i), "layer {i} holds its own COPY");
        assert!((0..20).filter(|&j| j != i).all(|j| !holds(j)), "layer {i}");
    }
}

#[test]
fn a_missing_dockerfile_is_named() {
    let (dir, session, mut request) = setup();
    request.dockerfile = dir.path().join("ctx/missing.Dockerfile");
    let (_, sink) = recording();
    let err = rbuild_build::build(&session, &request, sink, &CancelToken::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Dockerfile {} not found", request.dockerfile.display())
    );
}
