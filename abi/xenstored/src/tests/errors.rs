//! The error enum matches the wire's error table.

use super::*;

#[test]
fn errno_names_are_the_wire_table_in_order() {
    let names: Vec<&str> = Errno::ALL.iter().map(|e| e.name()).collect();
    assert_eq!(names, XSD_ERRORS);
    for e in Errno::ALL {
        assert_eq!(Errno::from_name(e.name()), Some(e));
        assert_eq!(std::format!("{e}"), e.name());
    }
    assert_eq!(Errno::from_name("EWHATEVER"), None);
}
