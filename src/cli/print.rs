//! Tables and text for the terminal: every cell and every outside string (from an image, a
//! registry, a runtime, the daemon) goes through ig's one escaping rule
//! (`ig::output::escape_control`) so it cannot drive the terminal.

use std::borrow::Cow;

use comfy_table::presets::NOTHING;
use comfy_table::Table;

/// A borderless table with this header, as every `ig` listing prints.
pub(crate) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING).set_header(header.to_vec());
    t
}

/// Adds one row, each cell escaped.
pub(crate) fn row<I, S>(table: &mut Table, cells: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    table.add_row(
        cells
            .into_iter()
            .map(|c| escape(c.as_ref()).into_owned())
            .collect::<Vec<_>>(),
    );
}

/// An outside string made safe for the terminal.
pub(crate) fn escape(s: &str) -> Cow<'_, str> {
    ig::output::escape_control(s)
}
