//! Host tests of the server core, by area.
