//! Property tests: the request checks against an independent model, and the ring indices a
//! front end may publish.
