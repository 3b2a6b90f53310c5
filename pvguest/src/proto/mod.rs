//! Host-testable protocol logic of the guest platform: no hardware access, time passed in.
