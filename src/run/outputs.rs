//! Where a run's results go. A local `ig run` writes to its terminal ([`Terminal`]); a daemon
//! instance hands its events to the clients attached to it (`daemon::hub`). The run loop only
//! sees this trait, so both print exactly the same events.

use std::io::Write;

use super::{RunConfig, RunError};
use crate::event::Schema;
use crate::operators::fields::FieldSelection;
use crate::output::{make_sink, ArraySink, ArrayWriter, OutputMode, Sink};

pub trait Outputs: Sync {
    /// The sink of one data source (a tracer), numbered from 0 in the gadget's order. `order`
    /// is the display order of all the schema's fields.
    fn sink<'a>(
        &'a self,
        datasource: usize,
        schema: &Schema,
        order: Vec<usize>,
        config: &RunConfig,
    ) -> Result<Box<dyn Sink + 'a>, RunError>;

    /// The sink of one array data source (map or BPF iterator); `clear_screen`: the gadget
    /// asks for the screen to be cleared before each table.
    fn array_sink<'a>(
        &'a self,
        datasource: usize,
        schema: &Schema,
        order: Vec<usize>,
        config: &RunConfig,
        clear_screen: bool,
    ) -> Result<Box<dyn ArraySink + 'a>, RunError>;

    /// Where a flight recorder writes its history when the run stops.
    fn text<'a>(&'a self) -> Box<dyn Write + 'a>;

    /// A message for the user, shown as `ig: TEXT` on stderr.
    fn notice(&self, text: &str);

    /// The gadget's programs are loaded and attached: events flow from now on.
    fn attached(&self) {}
}

/// The schema indices shown for `fields` in `mode`: machine-readable output carries every
/// field unless `--fields` says otherwise; columns show the visible ones.
pub fn columns_for(
    schema: &Schema,
    order: Vec<usize>,
    fields: &FieldSelection,
    mode: OutputMode,
) -> Result<Vec<usize>, String> {
    match (fields, mode) {
        (FieldSelection::Default, mode) if mode != OutputMode::Columns => Ok(order),
        (sel, _) => sel.apply(schema, &order),
    }
}

/// The process's stdout and stderr.
pub struct Terminal;

impl Outputs for Terminal {
    fn sink<'a>(
        &'a self,
        _datasource: usize,
        schema: &Schema,
        order: Vec<usize>,
        config: &RunConfig,
    ) -> Result<Box<dyn Sink + 'a>, RunError> {
        let columns =
            columns_for(schema, order, &config.fields, config.output).map_err(RunError::Config)?;
        let out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
        Ok(make_sink(config.output, schema, columns, out))
    }

    fn array_sink<'a>(
        &'a self,
        _datasource: usize,
        schema: &Schema,
        order: Vec<usize>,
        config: &RunConfig,
        clear_screen: bool,
    ) -> Result<Box<dyn ArraySink + 'a>, RunError> {
        use std::io::IsTerminal;
        let columns =
            columns_for(schema, order, &config.fields, config.output).map_err(RunError::Config)?;
        // Clearing is for a person watching: never into a pipe or a file.
        let clear = clear_screen && std::io::stdout().is_terminal();
        let out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
        Ok(Box::new(ArrayWriter::new(
            config.output,
            schema,
            columns,
            clear,
            out,
        )))
    }

    fn text<'a>(&'a self) -> Box<dyn Write + 'a> {
        Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
    }

    fn notice(&self, text: &str) {
        eprintln!("ig: {text}");
    }
}
