//! The schema cursor the typed encoders share: it walks a [`Schema`] while a connector writes
//! values through a [`ValueWriter`](crate::core::connect::ValueWriter), says which slot (struct
//! field or array element) each value fills, and records the first mismatch instead of letting
//! an encoder write bytes that do not follow the schema.

use crate::core::connect::{Field, Schema, Type};

/// Deepest nesting of any schema cdcd builds: envelope > row > struct column (point) > array.
const MAX_DEPTH: usize = 8;

/// The slot the next value fills.
pub enum Slot<'s> {
    /// The top-level value.
    Root(&'s Schema),
    /// Field `index` of a struct.
    Field(&'s Field, usize),
    /// Element `index` of an array.
    Element(&'s Schema, usize),
}

impl<'s> Slot<'s> {
    pub fn schema(&self) -> &'s Schema {
        match self {
            Slot::Root(s) | Slot::Element(s, _) => s,
            Slot::Field(f, _) => &f.schema,
        }
    }

    /// Whether something was written before this slot in its struct or array.
    pub fn follows_another(&self) -> bool {
        matches!(self, Slot::Field(_, i) | Slot::Element(_, i) if *i > 0)
    }
}

pub struct Cursor<'s> {
    root: Option<&'s Schema>,
    /// Open structs and arrays, each with the number of slots filled so far.
    frames: [(Option<&'s Schema>, usize); MAX_DEPTH],
    depth: usize,
    error: Option<String>,
}

impl<'s> Cursor<'s> {
    pub fn new(root: &'s Schema) -> Self {
        Cursor { root: Some(root), frames: [(None, 0); MAX_DEPTH], depth: 0, error: None }
    }

    /// The slot the next value fills, or `None` (and an error recorded) when there is none.
    fn next_slot(&mut self) -> Option<Slot<'s>> {
        if self.error.is_some() {
            return None;
        }
        if self.depth == 0 {
            return match self.root.take() {
                Some(root) => Some(Slot::Root(root)),
                None => self.fail("a value after the end of the record".into()),
            };
        }
        let (schema, filled) = &mut self.frames[self.depth - 1];
        let index = *filled;
        match schema.map(|s| &s.ty) {
            Some(Type::Struct(fields)) => match fields.get(index) {
                Some(f) => {
                    *filled += 1;
                    Some(Slot::Field(f, index))
                }
                None => {
                    let name = schema.and_then(|s| s.name.clone()).unwrap_or_default();
                    self.fail(format!("more values than the {} fields of struct {name}", fields.len()))
                }
            },
            Some(Type::Array(items)) => {
                *filled += 1;
                Some(Slot::Element(items, index))
            }
            _ => self.fail("a value inside something that is not a struct or array".into()),
        }
    }

    /// The next slot, which must hold a value of a type `accepts` allows; `what` names the
    /// value in the error.
    pub fn take(&mut self, what: &str, accepts: impl Fn(&Type) -> bool) -> Option<Slot<'s>> {
        let slot = self.next_slot()?;
        if !accepts(&slot.schema().ty) {
            let msg = format!("{what} for {} of type {:?}", slot_name(&slot), slot.schema().ty);
            return self.fail(msg);
        }
        Some(slot)
    }

    /// The next slot, which must be an optional field or element: null goes into it.
    pub fn take_null(&mut self) -> Option<Slot<'s>> {
        let slot = self.next_slot()?;
        if !slot.schema().optional || matches!(slot, Slot::Root(_)) {
            let msg = format!("null for required {}", slot_name(&slot));
            return self.fail(msg);
        }
        Some(slot)
    }

    /// Enters the struct or array `schema` (the schema of the slot just taken).
    pub fn push(&mut self, schema: &'s Schema) -> bool {
        if self.depth == MAX_DEPTH {
            self.fail::<()>(format!("schema nested deeper than {MAX_DEPTH} levels"));
            return false;
        }
        self.frames[self.depth] = (Some(schema), 0);
        self.depth += 1;
        true
    }

    /// Leaves the innermost struct or array; returns its schema and how many slots were filled.
    /// A struct left with fields unwritten is an error.
    pub fn pop(&mut self) -> Option<(&'s Schema, usize)> {
        if self.depth == 0 {
            return self.fail("an end without a begin".into());
        }
        self.depth -= 1;
        let (schema, filled) = self.frames[self.depth];
        let schema = schema?;
        if let Type::Struct(fields) = &schema.ty {
            if filled != fields.len() {
                let name = schema.name.clone().unwrap_or_default();
                return self.fail(format!("{filled} values for the {} fields of struct {name}", fields.len()));
            }
        }
        Some((schema, filled))
    }

    pub fn fail<T>(&mut self, msg: String) -> Option<T> {
        if self.error.is_none() {
            self.error = Some(msg);
        }
        None
    }

    /// The first mismatch, or an error if the record is incomplete.
    pub fn finish(self) -> Result<(), String> {
        match self.error {
            Some(e) => Err(e),
            None if self.depth > 0 || self.root.is_some() => Err("record ended before its schema did".into()),
            None => Ok(()),
        }
    }
}

/// The name a mismatch message uses for a slot.
fn slot_name(slot: &Slot<'_>) -> String {
    match slot {
        Slot::Root(s) => s.name.clone().unwrap_or_else(|| "the record".into()),
        Slot::Field(f, _) => format!("field {}", f.name),
        Slot::Element(_, i) => format!("array element {i}"),
    }
}
