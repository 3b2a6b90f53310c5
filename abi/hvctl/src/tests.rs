//! Host tests of the protocol: every request and response through a frame, the bounds,
//! malformed, oversized and truncated frames.

use super::*;
use alloc::vec;
use proptest::prelude::*;

fn every_request() -> Vec<Request> {
    vec![
        Request::List,
        Request::Info,
        Request::CreateBegin {
            file: "a.cfg".into(),
            config: "name = \"a\"\n".into(),
            kernel_len: 1234,
            ramdisk_len: 99,
        },
        Request::KernelChunk {
            offset: 4096,
            bytes: vec![0, 1, 2, 0, 255],
        },
        Request::CreateCommit { paused: true },
        Request::Console {
            dom: DomRef::Name("a".into()),
            from: 7,
            max: MAX_CONSOLE_READ,
        },
        Request::Pause(DomRef::Id(1)),
        Request::Unpause(DomRef::Id(1)),
        Request::Shutdown {
            dom: DomRef::Id(2),
            reason: Reason::Reboot,
        },
        Request::Destroy(DomRef::Name("b".into())),
        Request::Dmesg { from: 0 },
        Request::ShutdownHv,
    ]
}

/// Frames `bytes` through a reader: the frames it gives.
fn read_all(bytes: &[u8]) -> Vec<Result<Vec<u8>, FrameError>> {
    let mut r = FrameReader::default();
    bytes.iter().filter_map(|&b| r.push(b)).collect()
}

#[test]
fn every_request_travels_and_passes_its_checks() {
    for (id, req) in (1..).zip(every_request()) {
        let frame = encode(id, req.clone()).unwrap();
        assert_eq!(frame.last(), Some(&0));
        assert!(!frame[..frame.len() - 1].contains(&0));
        let got = read_all(&frame);
        assert_eq!(got.len(), 1);
        let env: Envelope<Request> = decode(got[0].as_ref().unwrap()).unwrap();
        assert_eq!((env.id, env.version), (id, VERSION));
        assert_eq!(env.body, req);
        assert_eq!(req.check(), Ok(()), "{req:?}");
    }
}

#[test]
fn every_response_travels() {
    let row = DomainInfo {
        name: "a".into(),
        domid: 1,
        mem_mib: 128,
        vcpus: 1,
        blocked: true,
        cpu_ns: 1_500_000_000,
        ..DomainInfo::default()
    };
    assert_eq!(row.state(), "-b----");
    for resp in [
        Response::Done,
        Response::Error("no".into()),
        Response::List(vec![row.clone(), row]),
        Response::Info(HostInfo::default()),
        Response::Received { next: 4096 },
        Response::Created { domid: 3 },
        Response::Output {
            next: 9,
            bytes: vec![0; MAX_CONSOLE_READ as usize],
            lost: 1,
        },
    ] {
        let frame = encode(9, resp.clone()).unwrap();
        let env: Envelope<Response> = decode(&frame[..frame.len() - 1]).unwrap();
        assert_eq!(env.body, resp);
    }
}

#[test]
fn checks_bound_every_field() {
    let long = "x".repeat(MAX_NAME + 1);
    for bad in [
        Request::Pause(DomRef::Id(DOMID_FIRST_RESERVED)),
        Request::Destroy(DomRef::Name(String::new())),
        Request::Unpause(DomRef::Name(long)),
        Request::Console {
            dom: DomRef::Id(1),
            from: 0,
            max: MAX_CONSOLE_READ + 1,
        },
        Request::CreateBegin {
            file: "a".into(),
            config: "x".repeat(MAX_CONFIG + 1),
            kernel_len: 1,
            ramdisk_len: 0,
        },
        Request::CreateBegin {
            file: "a".into(),
            config: String::new(),
            kernel_len: MAX_KERNEL + 1,
            ramdisk_len: 0,
        },
        Request::CreateBegin {
            file: "a".into(),
            config: String::new(),
            kernel_len: MAX_KERNEL,
            ramdisk_len: 1,
        },
        Request::CreateBegin {
            file: "a".into(),
            config: String::new(),
            kernel_len: 1,
            ramdisk_len: u32::MAX,
        },
        Request::CreateBegin {
            file: "a".into(),
            config: String::new(),
            kernel_len: 0,
            ramdisk_len: 5,
        },
        Request::KernelChunk {
            offset: 0,
            bytes: vec![1; CHUNK + 1],
        },
        Request::KernelChunk {
            offset: 0,
            bytes: vec![],
        },
    ] {
        assert!(bad.check().is_err(), "{bad:?}");
    }
    assert_eq!(DomRef::parse("12"), DomRef::Id(12));
    assert_eq!(DomRef::parse("web1"), DomRef::Name("web1".into()));
    assert_eq!(DomRef::parse("99999"), DomRef::Name("99999".into()));
}

#[test]
fn oversized_frames_are_dropped_whole_and_the_next_one_reads() {
    let mut bytes = vec![7u8; MAX_FRAME + 100];
    bytes.push(0);
    bytes.extend(encode(5, Request::List).unwrap());
    let got = read_all(&bytes);
    assert_eq!(got[0], Err(FrameError::TooLong));
    let env: Envelope<Request> = decode(got[1].as_ref().unwrap()).unwrap();
    assert_eq!((env.id, env.body), (5, Request::List));
    // An encoder never makes one.
    let huge = Response::Output {
        next: 0,
        bytes: vec![1; MAX_FRAME],
        lost: 0,
    };
    assert_eq!(encode(1, huge), Err(FrameError::TooLong));
}

#[test]
fn truncated_and_garbage_frames_are_errors_with_the_id_when_readable() {
    let frame = encode(77, Request::Pause(DomRef::Name("abc".into()))).unwrap();
    let body = &frame[..frame.len() - 1];
    for cut in 1..body.len() {
        // A cut frame is either not COBS or not a whole request; never a request.
        assert!(decode::<Request>(&body[..cut]).is_err(), "cut at {cut}");
    }
    // A client that went away mid-frame: the next client's leading 0 ends the half frame,
    // which is an error, and its own request reads whole.
    let mut stream = body[..body.len() / 2].to_vec();
    stream.push(0);
    stream.extend(encode(78, Request::List).unwrap());
    let got = read_all(&stream);
    assert_eq!(got.len(), 2);
    assert!(decode::<Request>(got[0].as_ref().unwrap()).is_err());
    assert_eq!(
        decode::<Request>(got[1].as_ref().unwrap()).unwrap().body,
        Request::List
    );
    // An unknown variant keeps its id for the error answer.
    let raw = postcard::to_allocvec_cobs(&(VERSION, 99u32, 200u8)).unwrap();
    assert_eq!(
        decode::<Request>(&raw[..raw.len() - 1]).unwrap_err(),
        (FrameError::Decode, 99)
    );
    let old = postcard::to_allocvec_cobs(&(VERSION + 1, 5u32, 0u8)).unwrap();
    assert_eq!(
        decode::<Request>(&old[..old.len() - 1]).unwrap_err(),
        (FrameError::Version(VERSION + 1), 5)
    );
    // Bytes after a whole envelope are refused.
    let extra = postcard::to_allocvec_cobs(&(VERSION, 5u32, 0u8, 1u8)).unwrap();
    assert!(decode::<Request>(&extra[..extra.len() - 1]).is_err());
    assert_eq!(read_all(&[0, 0, 0]), vec![], "empty frames are skipped");
}

proptest! {
    #[test]
    fn any_bytes_are_bounded_and_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..9000)) {
        let mut r = FrameReader::default();
        for b in bytes {
            if let Some(Ok(frame)) = r.push(b) {
                prop_assert!(frame.len() <= MAX_FRAME);
                if let Ok(env) = decode::<Request>(&frame) {
                    let _ = env.body.check();
                }
            }
            prop_assert!(r.held() <= MAX_FRAME);
        }
    }

    #[test]
    fn any_envelope_body_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut raw = postcard::to_allocvec(&(VERSION, 1u32)).unwrap();
        raw.extend(tail);
        let mut framed = vec![0u8; raw.len() * 2 + 2];
        let n = cobs::encode(&raw, &mut framed);
        let _ = decode::<Request>(&framed[..n]);
    }
}
