import TallyCore

/// The behaviour types of SPEC §1: what the ingest socket and point actions take. Spelled out rather than taken
/// from `EventType.allCases`, which also holds the administrative types that enter only through the admin socket.
let behaviourTypes: [EventType] = [.assetDownload, .emailSend, .emailOpen, .formSubmit, .pageHit, .urlHit]
