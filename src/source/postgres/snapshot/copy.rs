//! COPY text format: the rows a snapshot chunk reads, unescaped into one buffer per chunk so a
//! chunk costs a few allocations however many rows it has.

use super::super::pgoutput::Cell;

/// The rows of one chunk: every value's bytes in `data`, every row's cells in `cells`.
#[derive(Default)]
pub struct RowBuf {
    pub data: Vec<u8>,
    pub cells: Vec<Cell>,
    /// End (exclusive) of each row's cells in `cells`.
    ends: Vec<u32>,
}

impl RowBuf {
    /// Adds one COPY text line as a row.
    pub fn push_line(&mut self, line: &[u8]) {
        append_copy_line(line, &mut self.data, &mut self.cells);
        self.ends.push(self.cells.len() as u32);
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Drops the last row.
    pub fn pop(&mut self) {
        if self.ends.pop().is_some() {
            let cells_end = self.ends.last().map_or(0, |&e| e as usize);
            let data_end = self.cells[cells_end..]
                .iter()
                .find_map(|c| match c {
                    Cell::Text(start, _) => Some(*start as usize),
                    _ => None,
                })
                .unwrap_or(self.data.len());
            self.cells.truncate(cells_end);
            self.data.truncate(data_end);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The cells of row `i`.
    pub fn row(&self, i: usize) -> &[Cell] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.cells[start..self.ends[i] as usize]
    }

    /// Bytes held, for memory accounting.
    pub fn bytes(&self) -> usize {
        self.data.capacity() + self.cells.capacity() * std::mem::size_of::<Cell>() + self.ends.capacity() * 4
    }
}

/// Splits one line of COPY text format into cells over `scratch` (unescaped values).
pub fn parse_copy_line(line: &[u8], scratch: &mut Vec<u8>, cells: &mut Vec<Cell>) {
    scratch.clear();
    cells.clear();
    append_copy_line(line, scratch, cells);
}

/// Like [`parse_copy_line`], appending to `scratch` and `cells` (many rows in one buffer).
pub fn append_copy_line(line: &[u8], scratch: &mut Vec<u8>, cells: &mut Vec<Cell>) {
    for field in line.split(|&b| b == b'\t') {
        if field == b"\\N" {
            cells.push(Cell::Null);
            continue;
        }
        let start = scratch.len();
        let mut i = 0;
        while i < field.len() {
            // Most values have no escapes: copy up to the next backslash in one go.
            let plain = field[i..].iter().position(|&b| b == b'\\').unwrap_or(field.len() - i);
            scratch.extend_from_slice(&field[i..i + plain]);
            i += plain;
            if i >= field.len() {
                break;
            }
            if i + 1 >= field.len() {
                scratch.push(b'\\');
                break;
            }
            let e = field[i + 1];
            i += 2;
            match e {
                b'b' => scratch.push(8),
                b'f' => scratch.push(12),
                b'n' => scratch.push(b'\n'),
                b'r' => scratch.push(b'\r'),
                b't' => scratch.push(b'\t'),
                b'v' => scratch.push(11),
                b'0'..=b'7' => {
                    let mut v = (e - b'0') as u32;
                    let mut n = 1;
                    while n < 3 && i < field.len() && (b'0'..=b'7').contains(&field[i]) {
                        v = v * 8 + (field[i] - b'0') as u32;
                        i += 1;
                        n += 1;
                    }
                    scratch.push(v as u8);
                }
                b'x' => {
                    let mut v = 0u32;
                    let mut n = 0;
                    while n < 2 && i < field.len() && field[i].is_ascii_hexdigit() {
                        v = v * 16 + (field[i] as char).to_digit(16).unwrap_or(0);
                        i += 1;
                        n += 1;
                    }
                    scratch.push(v as u8);
                }
                other => scratch.push(other),
            }
        }
        cells.push(Cell::Text(start as u32, scratch.len() as u32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::postgres::pgoutput::cell_text;

    #[test]
    fn rows_share_one_buffer() {
        let mut rows = RowBuf::default();
        rows.push_line(b"1\tone");
        rows.push_line(b"2\t\\\\N");
        rows.push_line(b"3\t\\N");
        assert_eq!(rows.len(), 3);
        assert_eq!(cell_text(&rows.data, rows.row(0)[1]), Some(&b"one"[..]));
        assert_eq!(cell_text(&rows.data, rows.row(1)[1]), Some(&b"\\N"[..]));
        assert_eq!(rows.row(2), &[rows.row(2)[0], Cell::Null]);
        assert_eq!(cell_text(&rows.data, rows.row(2)[0]), Some(&b"3"[..]));
        rows.pop();
        rows.push_line(b"4\tfour");
        assert_eq!(rows.len(), 3);
        assert_eq!(cell_text(&rows.data, rows.row(2)[1]), Some(&b"four"[..]));
        assert_eq!(cell_text(&rows.data, rows.row(1)[1]), Some(&b"\\N"[..]));
    }

    #[test]
    fn copy_text_unescapes_and_marks_nulls() {
        let mut scratch = Vec::new();
        let mut cells = Vec::new();
        parse_copy_line(b"1\t\\N\ta\\tb\\nc\\\\d\t\\101\\x42\t", &mut scratch, &mut cells);
        assert_eq!(cells.len(), 5);
        assert_eq!(cell_text(&scratch, cells[0]), Some(&b"1"[..]));
        assert_eq!(cells[1], Cell::Null);
        assert_eq!(cell_text(&scratch, cells[2]), Some(&b"a\tb\nc\\d"[..]));
        assert_eq!(cell_text(&scratch, cells[3]), Some(&b"AB"[..]));
        assert_eq!(cell_text(&scratch, cells[4]), Some(&b""[..]));
    }
}
