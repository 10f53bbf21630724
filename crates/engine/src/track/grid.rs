//! The spatial index: a uniform grid of latitude/longitude cells, each
//! holding the entities (or fences) whose box meets it, per altitude layer.
//!
//! Why a grid rather than the R*-tree the activity index uses: tracks move
//! every second, and a grid update is free when the box stays in the same
//! cells (the common case at 1 Hz, a few hundred metres per report against
//! cells of tens of kilometres) and a few vector operations otherwise, where
//! an R-tree would remove and reinsert with rebalancing on every report.
//! Queries are for one size (the largest alert reach plus a swept path), so
//! one cell size fits them all. Boxes are conservative (see
//! `kinematics.rs`), so a query returns a superset of the true neighbours.
//!
//! Each cell keeps its items per altitude layer (ground, airborne of unknown
//! height, then airborne by height), so a query for an aircraft at 9 km
//! skips every layer outside its vertical reach without looking at them.
//!
//! Cells are square in degrees (`grid_cell_m` of latitude); toward the
//! poles they narrow in metres, so queries there visit more cells, which is
//! correct and only slower. Boxes that cross the antimeridian wrap around the
//! longitude cells.

use std::ops::RangeInclusive;

use deconflict_geodesy::GeoBounds;

use super::hash::StableHashMap;
use super::kinematics::M_MIN_M;

/// The cells a box covers (inclusive); `wraps` when it crosses the
/// antimeridian, going east from `west` past the last column to `east`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CellBox {
    pub south: u32,
    pub north: u32,
    pub west: u32,
    pub east: u32,
    pub wraps: bool,
}

impl CellBox {
    /// Whether the two boxes share a cell: an item filed under one is found
    /// by a query of the other (in the same layer).
    pub(crate) fn meets(&self, other: &CellBox) -> bool {
        // A wrapping box's columns are `west..` (up to the last column) and
        // `..=east`; columns never pass the last, so `west..` may stay open.
        fn columns(b: &CellBox) -> [(u32, u32); 2] {
            if b.wraps {
                [(b.west, u32::MAX), (0, b.east)]
            } else {
                [(b.west, b.east), (b.west, b.east)]
            }
        }
        let rows = self.south <= other.north && other.south <= self.north;
        rows && columns(self)
            .iter()
            .any(|a| columns(other).iter().any(|b| a.0 <= b.1 && b.0 <= a.1))
    }
}

/// The items of one altitude layer of one cell.
#[derive(Debug, Default)]
struct Layer {
    layer: u16,
    items: Vec<u32>,
}

#[derive(Debug)]
pub(crate) struct Grid {
    cell_deg: f64,
    lat_cells: u32,
    lon_cells: u32,
    /// Per cell, its non-empty layers sorted by layer: one hash lookup per
    /// cell serves every layer a query wants.
    cells: StableHashMap<u64, Vec<Layer>>,
    /// The cells changed since a [`PackedGrid`] last refreshed from this
    /// grid, for it to patch rather than copy the whole grid again.
    changes: ChangeLog,
}

/// The keys of the cells a grid changed since its packed copy last looked
/// (`PackedGrid::refresh`), or that it changed too many to list.
#[derive(Debug, Default)]
struct ChangeLog {
    /// Whether a packed copy follows the grid (else nothing is logged).
    followed: bool,
    /// More changes than the log keeps, or every item renumbered: the
    /// packed copy must be made afresh.
    overflowed: bool,
    /// Changed cells, each once or more.
    keys: Vec<u64>,
}

/// A change log longer than this many entries per occupied cell (plus a
/// constant) is dropped (`ChangeLog::overflowed`): a copy then costs little
/// more than the patching, and the log stays a fraction of the grid.
const CHANGES_PER_CELL_DIVISOR: usize = 8;
const CHANGES_ANYWAY: usize = 64;

/// The smallest block a cell's list takes, in bytes: glibc's smallest
/// block holds 24.
const MIN_LIST_BYTES: usize = 24;

/// Room for one more item in a cell's list, growing by half rather than
/// doubling and from one small block rather than `Vec`'s first 4 or 8
/// items: a cell's lists hold a few to a few hundred items, and a doubling
/// list's slack (a third of its length on average) is resident.
fn grow_by_half<T>(list: &mut Vec<T>) {
    if list.len() == list.capacity() {
        let room = (list.len() / 2)
            .max(1)
            .max((MIN_LIST_BYTES / std::mem::size_of::<T>().max(1)).saturating_sub(list.len()));
        list.reserve_exact(room);
    }
}

/// Cell numbers take 24 bits each in a key (`grid_cell_m ≥ 100 m` gives at
/// most 400,000 columns).
fn key(row: u32, column: u32) -> u64 {
    (u64::from(row) << 24) | u64::from(column)
}

impl Grid {
    pub(crate) fn new(cell_m: f64) -> Self {
        // Metres of latitude per degree are at least M_min·π/180, so a cell
        // of this many degrees is at least `cell_m` tall.
        let cell_deg = (cell_m / M_MIN_M).to_degrees();
        Self {
            cell_deg,
            lat_cells: (180.0 / cell_deg).ceil() as u32,
            lon_cells: (360.0 / cell_deg).ceil() as u32,
            cells: StableHashMap::default(),
            changes: ChangeLog::default(),
        }
    }

    /// Logs a change of the cell `k` for a packed copy that follows.
    fn changed(&mut self, k: u64) {
        let log = &mut self.changes;
        if !log.followed || log.overflowed {
            return;
        }
        if log.keys.len() >= self.cells.len() / CHANGES_PER_CELL_DIVISOR + CHANGES_ANYWAY {
            log.overflowed = true;
            log.keys = Vec::new();
        } else {
            log.keys.push(k);
        }
    }

    /// Every cell changed (for a packed copy that follows).
    fn changed_all(&mut self) {
        if self.changes.followed {
            self.changes.overflowed = true;
            self.changes.keys = Vec::new();
        }
    }

    fn row(&self, lat_deg: f64) -> u32 {
        (((lat_deg + 90.0) / self.cell_deg).floor().max(0.0) as u32).min(self.lat_cells - 1)
    }

    fn column(&self, lon_deg: f64) -> u32 {
        (((lon_deg + 180.0) / self.cell_deg).floor().max(0.0) as u32).min(self.lon_cells - 1)
    }

    /// The (row, column) of the cell holding a point.
    pub(crate) fn cell_of(&self, lat_deg: f64, lon_deg: f64) -> (u32, u32) {
        (self.row(lat_deg), self.column(lon_deg))
    }

    pub(crate) fn cell_box(&self, b: &GeoBounds) -> CellBox {
        CellBox {
            south: self.row(b.south_deg),
            north: self.row(b.north_deg),
            west: self.column(b.west_deg),
            east: self.column(b.east_deg),
            wraps: b.west_deg > b.east_deg,
        }
    }

    fn columns(&self, cb: CellBox) -> impl Iterator<Item = u32> {
        let (first, second) = if cb.wraps {
            (cb.west..self.lon_cells, 0..cb.east + 1)
        } else {
            (cb.west..cb.east + 1, 0..0)
        };
        first.chain(second)
    }

    fn keys(&self, cb: CellBox) -> impl Iterator<Item = u64> + '_ {
        (cb.south..=cb.north).flat_map(move |row| self.columns(cb).map(move |column| key(row, column)))
    }

    pub(crate) fn insert(&mut self, cb: CellBox, layer: u16, item: u32) {
        let keys: Vec<u64> = self.keys(cb).collect();
        for k in keys {
            self.changed(k);
            let layers = self.cells.entry(k).or_default();
            match layers.binary_search_by_key(&layer, |l| l.layer) {
                Ok(at) => {
                    let items = &mut layers[at].items;
                    grow_by_half(items);
                    items.push(item);
                }
                Err(at) => {
                    grow_by_half(layers);
                    let mut items = Vec::new();
                    grow_by_half(&mut items);
                    items.push(item);
                    layers.insert(at, Layer { layer, items });
                }
            }
        }
    }

    pub(crate) fn remove(&mut self, cb: CellBox, layer: u16, item: u32) {
        let keys: Vec<u64> = self.keys(cb).collect();
        for k in keys {
            let Some(layers) = self.cells.get_mut(&k) else {
                continue;
            };
            let Ok(at) = layers.binary_search_by_key(&layer, |l| l.layer) else {
                continue;
            };
            let items = &mut layers[at].items;
            let Some(i) = items.iter().position(|&x| x == item) else {
                continue;
            };
            items.swap_remove(i);
            if items.is_empty() {
                layers.remove(at);
            }
            if layers.is_empty() {
                self.cells.remove(&k);
            }
            self.changed(k);
        }
    }

    /// Replaces every item `i` by `new[i]`.
    pub(crate) fn renumber(&mut self, new: &[u32]) {
        self.changed_all();
        for layers in self.cells.values_mut() {
            for layer in layers {
                layer.items.iter_mut().for_each(|i| *i = new[*i as usize]);
            }
        }
    }

    /// Removes every item.
    pub(crate) fn clear(&mut self) {
        self.changed_all();
        self.cells.clear();
    }

    /// Calls `f` with every item filed in a cell of `cb` in a layer within
    /// one of `layers` (disjoint ranges); an item filed in several such
    /// cells comes once per cell.
    pub(crate) fn for_each(&self, cb: CellBox, layers: &[RangeInclusive<u16>], mut f: impl FnMut(u32)) {
        for k in self.keys(cb) {
            self.for_each_in(k, layers, &mut f);
        }
    }

    /// [`for_each`](Self::for_each) in the one cell `k`.
    fn for_each_in(&self, k: u64, layers: &[RangeInclusive<u16>], f: &mut impl FnMut(u32)) {
        let Some(cell) = self.cells.get(&k) else { return };
        // A cell has a layer per 500 m of height with aircraft in it; a
        // query wants two or three: find them rather than test each.
        for range in layers {
            let first = cell.partition_point(|l| l.layer < *range.start());
            for layer in cell[first..].iter().take_while(|l| l.layer <= *range.end()) {
                layer.items.iter().for_each(|&i| f(i));
            }
        }
    }

    /// Heap bytes held by the cells, for memory accounting.
    pub(crate) fn heap_bytes(&self) -> usize {
        let table = self.cells.capacity() * (std::mem::size_of::<(u64, Vec<Layer>)>() + 1);
        let lists: usize = self
            .cells
            .values()
            .map(|v| {
                v.capacity() * std::mem::size_of::<Layer>()
                    + v.iter().map(|l| l.items.capacity() * 4).sum::<usize>()
            })
            .sum();
        table + lists + self.changes.keys.capacity() * 8
    }
}

/// A read-only copy of a [`Grid`] packed for many queries in a row (a
/// batch's gathering): the cells of the occupied window in one table
/// indexed by row and column, their layers and items each in one array in
/// row-major order. A query then reads two short runs of memory per cell
/// instead of chasing a hash bucket, the cell's layer vector and each
/// layer's item vector, three likely cache misses per cell.
///
/// Kept up to date by [`refresh`](Self::refresh), which patches rather
/// than copies: the cells the grid changed since are marked *stale* in the
/// table and read from the grid itself, until so many are stale that a
/// fresh copy is worth its cost. A batch of a few hundred reports then
/// costs what its reports cost, not a copy of the whole index (the server
/// makes many such calls a second).
#[derive(Debug, Default)]
pub(crate) struct PackedGrid {
    /// Whether it holds the grid (else queries go to the grid itself: the
    /// window would be too large, e.g. entities all over the globe).
    packed: bool,
    /// Cells changed since the copy was made: marked stale in the window,
    /// or outside it (`outside`), counted once per mark.
    stale: usize,
    /// Whether the grid changed a cell outside the window since the copy:
    /// a query reaching outside the window then goes to the grid.
    outside: bool,
    south: u32,
    west: u32,
    rows: u32,
    columns: u32,
    /// Per cell of the window, row by row, where its layers start in
    /// `layers`, with `STALE` when the grid changed the cell since; one
    /// more entry at the end.
    cell_layers: Vec<u32>,
    /// Per layer of a cell: (layer, where its items start in `items`); the
    /// items end where the next entry's start (one sentinel at the end).
    layers: Vec<(u16, u32)>,
    items: Vec<u32>,
}

/// A window of more cells than this many per item (plus a constant) is not
/// packed: its table would cost more than it saves.
const PACKED_CELLS_PER_ITEM: usize = 2;
const PACKED_CELLS_ANYWAY: usize = 1 << 16;

/// `PackedGrid::cell_layers`: the cell changed since the copy.
const STALE: u32 = 1 << 31;

/// The cell numbers of a key.
fn row_column(k: u64) -> (u32, u32) {
    ((k >> 24) as u32, (k & 0xFF_FFFF) as u32)
}

impl PackedGrid {
    /// Brings this copy up to date with `grid` (which it then follows:
    /// `grid` logs its changes from now on): marks the cells `grid`
    /// changed since the last refresh stale, or makes a fresh copy when
    /// that is the first, `grid` lost count, or too many cells are stale.
    pub(crate) fn refresh(&mut self, grid: &mut Grid) {
        let log = &mut grid.changes;
        let patch = log.followed && !log.overflowed;
        (log.followed, log.overflowed) = (true, false);
        let mut keys = std::mem::take(&mut log.keys);
        if patch {
            if self.packed {
                for &k in &keys {
                    self.mark_stale(k);
                }
            } else {
                // (Queries go to the grid: a copy is worth trying again
                // once as many cells changed.)
                self.stale += keys.len();
            }
            if self.stale <= grid.cells.len() / CHANGES_PER_CELL_DIVISOR + CHANGES_ANYWAY {
                keys.clear();
                grid.changes.keys = keys;
                return;
            }
        }
        self.pack(grid);
    }

    /// Marks the cell `k` changed since the copy.
    fn mark_stale(&mut self, k: u64) {
        let (r, c) = row_column(k);
        let (row, column) = (r.wrapping_sub(self.south), c.wrapping_sub(self.west));
        if row < self.rows && column < self.columns {
            let start = &mut self.cell_layers[(row * self.columns + column) as usize];
            self.stale += usize::from(*start & STALE == 0);
            *start |= STALE;
        } else {
            self.outside = true;
            self.stale += 1;
        }
    }

    /// Makes this a copy of `grid`, reusing its memory.
    pub(crate) fn pack(&mut self, grid: &Grid) {
        (self.packed, self.stale, self.outside) = (false, 0, false);
        self.cell_layers.clear();
        self.layers.clear();
        self.items.clear();
        let mut keys: Vec<u64> = grid.cells.keys().copied().collect();
        if keys.is_empty() {
            return;
        }
        // Row-major: a key is the row above the column.
        keys.sort_unstable();
        let (south, north) = (row_column(keys[0]).0, row_column(keys[keys.len() - 1]).0);
        let (west, east) = keys
            .iter()
            .map(|&k| row_column(k).1)
            .fold((u32::MAX, 0), |(w, e), c| (w.min(c), e.max(c)));
        let (rows, columns) = (north - south + 1, east - west + 1);
        let items: usize = grid
            .cells
            .values()
            .flat_map(|layers| layers.iter().map(|l| l.items.len()))
            .sum();
        let cells = rows as usize * columns as usize;
        if cells > items * PACKED_CELLS_PER_ITEM + PACKED_CELLS_ANYWAY {
            return;
        }
        (self.south, self.west, self.rows, self.columns) = (south, west, rows, columns);
        self.cell_layers.reserve(cells + 1);
        self.items.reserve(items);
        let mut keys = keys.into_iter().peekable();
        for r in south..=north {
            for c in west..=east {
                self.cell_layers.push(self.layers.len() as u32);
                if keys.peek() == Some(&key(r, c)) {
                    let k = keys.next().expect("peeked");
                    for layer in &grid.cells[&k] {
                        self.layers.push((layer.layer, self.items.len() as u32));
                        self.items.extend_from_slice(&layer.items);
                    }
                }
            }
        }
        self.cell_layers.push(self.layers.len() as u32);
        self.layers.push((u16::MAX, self.items.len() as u32));
        assert!(
            self.layers.len() < STALE as usize,
            "layer starts leave the stale bit"
        );
        self.packed = true;
    }

    /// [`Grid::for_each`] on the packed copy of `grid` (which it must be).
    pub(crate) fn for_each(
        &self,
        grid: &Grid,
        cb: CellBox,
        layers: &[RangeInclusive<u16>],
        mut f: impl FnMut(u32),
    ) {
        if !self.packed || cb.wraps {
            return grid.for_each(cb, layers, f);
        }
        let (window_north, window_east) = (self.south + self.rows - 1, self.west + self.columns - 1);
        let inside = cb.south >= self.south
            && cb.north <= window_north
            && cb.west >= self.west
            && cb.east <= window_east;
        if self.outside && !inside {
            return grid.for_each(cb, layers, f);
        }
        let (north, east) = (cb.north.min(window_north), cb.east.min(window_east));
        let (south, west) = (cb.south.max(self.south), cb.west.max(self.west));
        if south > north || west > east {
            return;
        }
        for r in south..=north {
            let row_start = ((r - self.south) * self.columns) as usize;
            let first = row_start + (west - self.west) as usize;
            let last = row_start + (east - self.west) as usize;
            for cell in first..=last {
                let start = self.cell_layers[cell];
                if start & STALE != 0 {
                    let column = self.west + (cell - row_start) as u32;
                    grid.for_each_in(key(r, column), layers, &mut f);
                    continue;
                }
                let end = self.cell_layers[cell + 1] & !STALE;
                let cell_layers = &self.layers[start as usize..end as usize + 1];
                for range in layers {
                    let from = cell_layers[..cell_layers.len() - 1].partition_point(|l| l.0 < *range.start());
                    for k in from..cell_layers.len() - 1 {
                        if cell_layers[k].0 > *range.end() {
                            break;
                        }
                        let items = cell_layers[k].1 as usize..cell_layers[k + 1].1 as usize;
                        self.items[items].iter().for_each(|&i| f(i));
                    }
                }
            }
        }
    }

    /// Heap bytes held, for memory accounting.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.cell_layers.capacity() * 4 + self.layers.capacity() * 8 + self.items.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(south: f64, north: f64, west: f64, east: f64) -> GeoBounds {
        GeoBounds {
            south_deg: south,
            north_deg: north,
            west_deg: west,
            east_deg: east,
        }
    }

    /// Query boxes around the packed grids' items (near 36° N 41° E): inside,
    /// small, partly outside to the south-west and north-east, far away.
    fn queries() -> Vec<GeoBounds> {
        vec![
            bounds(36.0, 36.2, 41.0, 41.2),
            bounds(36.03, 36.05, 41.02, 41.04),
            bounds(35.0, 36.01, 40.0, 41.01),
            bounds(36.1, 37.0, 41.05, 42.0),
            bounds(10.0, 10.1, 10.0, 10.1),
        ]
    }

    /// What `grid` finds and what `packed` finds for a query, in order.
    fn found_by_both(
        grid: &Grid,
        packed: &PackedGrid,
        query: &GeoBounds,
        layers: &[RangeInclusive<u16>],
    ) -> (Vec<u32>, Vec<u32>) {
        let cb = grid.cell_box(query);
        let (mut want, mut got) = (Vec::new(), Vec::new());
        grid.for_each(cb, layers, |i| want.push(i));
        packed.for_each(grid, cb, layers, |i| got.push(i));
        (want, got)
    }

    #[test]
    fn a_box_across_the_antimeridian_finds_both_sides() {
        let mut grid = Grid::new(10_000.0);
        let east_side = grid.cell_box(&bounds(0.0, 0.01, 179.95, 179.99));
        let west_side = grid.cell_box(&bounds(0.0, 0.01, -179.99, -179.95));
        grid.insert(east_side, 0, 1);
        grid.insert(west_side, 0, 2);
        let query = grid.cell_box(&bounds(0.0, 0.01, 179.9, -179.9));
        let mut found = Vec::new();
        grid.for_each(query, &[0..=0], |i| found.push(i));
        found.sort_unstable();
        found.dedup();
        assert_eq!(found, vec![1, 2]);
        let elsewhere = grid.cell_box(&bounds(0.0, 0.01, 10.0, 10.1));
        grid.for_each(elsewhere, &[0..=0], |i| panic!("found {i}"));
    }

    /// The packed copy finds what the grid finds, cell by cell and layer
    /// by layer, including queries partly or wholly outside its window.
    #[test]
    fn a_packed_grid_finds_what_the_grid_finds() {
        let mut grid = Grid::new(1_000.0);
        let mut item = 0;
        for (i, lat) in [36.0, 36.02, 36.07, 36.11].into_iter().enumerate() {
            for (j, lon) in [41.0, 41.03, 41.09].into_iter().enumerate() {
                let cb = grid.cell_box(&bounds(lat, lat + 0.01 * i as f64, lon, lon + 0.02 * j as f64));
                for layer in [0, 1, 5, 9] {
                    if !(item + u32::from(layer)).is_multiple_of(3) {
                        grid.insert(cb, layer, item);
                    }
                    item += 1;
                }
            }
        }
        let mut packed = PackedGrid::default();
        packed.pack(&grid);
        assert!(packed.packed);
        let sorted = |mut v: Vec<u32>| {
            v.sort_unstable();
            v
        };
        for query in queries() {
            for layers in [vec![0..=0], vec![0..=1, 5..=5], vec![2..=8], vec![0..=u16::MAX]] {
                let (want, got) = found_by_both(&grid, &packed, &query, &layers);
                assert_eq!(sorted(got), sorted(want), "{query:?} {layers:?}");
            }
        }
    }

    /// A packed copy that follows its grid through inserts, removals,
    /// renumbering and clearing, refreshed now and then, gives every query
    /// exactly what the grid gives (the same items in the same order), as
    /// a fresh copy does; and the refreshes patch more often than they
    /// copy.
    #[test]
    fn a_refreshed_packed_grid_finds_what_the_grid_finds() {
        let mut grid = Grid::new(1_000.0);
        let mut packed = PackedGrid::default();
        let mut filed: Vec<Option<(CellBox, u16)>> = vec![None; 400];
        let mut x = 7u64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let (mut patched, mut copied) = (0, 0);
        for round in 0..3_000 {
            let item = next(filed.len() as u64) as usize;
            match next(100) {
                0 => {
                    // Every item renumbered (a relayout).
                    let new: Vec<u32> = (0..filed.len() as u32).rev().collect();
                    grid.renumber(&new);
                    filed.reverse();
                }
                1 if round % 500 == 1 => {
                    grid.clear();
                    filed.iter_mut().for_each(|f| *f = None);
                }
                _ => {
                    if let Some((cb, layer)) = filed[item].take() {
                        grid.remove(cb, layer, item as u32);
                    }
                    if next(3) > 0 {
                        // Mostly near 36° N 41° E; now and then farther,
                        // often outside the packed window.
                        let (lat, lon) = if next(20) == 0 {
                            (35.7 + next(80) as f64 * 0.01, 40.7 + next(80) as f64 * 0.01)
                        } else {
                            (36.0 + next(100) as f64 * 0.002, 41.0 + next(100) as f64 * 0.002)
                        };
                        let size = next(4) as f64 * 0.004;
                        let cb = grid.cell_box(&bounds(lat, lat + size, lon, lon + size));
                        let layer = next(4) as u16;
                        grid.insert(cb, layer, item as u32);
                        filed[item] = Some((cb, layer));
                    }
                }
            }
            if next(8) == 0 {
                packed.refresh(&mut grid);
                if packed.stale > 0 {
                    patched += 1;
                } else {
                    copied += 1;
                }
                let mut fresh = PackedGrid::default();
                fresh.pack(&grid);
                // The whole area, and across the antimeridian, too.
                let more = [
                    bounds(35.6, 36.6, 40.6, 41.6),
                    bounds(36.0, 36.01, 179.99, -179.99),
                ];
                for query in queries().into_iter().chain(more) {
                    for layers in [vec![0..=0], vec![0..=1, 3..=3], vec![0..=u16::MAX]] {
                        let (want, got) = found_by_both(&grid, &packed, &query, &layers);
                        assert_eq!(got, want, "round {round}, {query:?} {layers:?}");
                        let (_, got_fresh) = found_by_both(&grid, &fresh, &query, &layers);
                        assert_eq!(got_fresh, want, "round {round}, {query:?} {layers:?}");
                    }
                }
            }
        }
        assert!(
            patched > copied && copied > 3,
            "patched {patched}, copied {copied}"
        );
    }

    #[test]
    fn removal_empties_cells_and_layers_are_apart() {
        let mut grid = Grid::new(1_000.0);
        let cb = grid.cell_box(&bounds(36.0, 36.05, 41.0, 41.05));
        grid.insert(cb, 3, 7);
        let mut hits = 0;
        grid.for_each(cb, &[2..=2], |_| hits += 1);
        assert_eq!(hits, 0);
        grid.for_each(cb, &[3..=3], |_| hits += 1);
        assert!(hits > 1);
        grid.remove(cb, 3, 7);
        assert!(grid.cells.is_empty());
    }

    #[test]
    fn cell_lists_grow_by_half_and_keep_their_items_in_order() {
        let mut items: Vec<u32> = Vec::new();
        let mut capacities = Vec::new();
        for k in 0..30 {
            grow_by_half(&mut items);
            items.push(k);
            capacities.push(items.capacity());
        }
        capacities.dedup();
        assert_eq!(capacities, [6, 9, 13, 19, 28, 42]);
        let mut layers: Vec<Layer> = Vec::new();
        grow_by_half(&mut layers);
        assert_eq!(layers.capacity(), 1);

        // One crowded cell, items coming and going in many layers, against
        // a list per layer kept with `Vec`'s own calls.
        let mut grid = Grid::new(1_000.0);
        let cb = grid.cell_box(&bounds(36.004, 36.004, 41.004, 41.004));
        assert_eq!((cb.south, cb.west), (cb.north, cb.east), "one cell");
        let mut model: Vec<Vec<u32>> = vec![Vec::new(); 7];
        let mut x = 11u32;
        for item in 0..3_000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let layer = (x >> 16) % 7;
            let list = &mut model[layer as usize];
            if x.is_multiple_of(4) && !list.is_empty() {
                let gone = list[(x >> 8) as usize % list.len()];
                grid.remove(cb, layer as u16, gone);
                let at = list.iter().position(|&i| i == gone).expect("listed");
                list.swap_remove(at);
            } else {
                grid.insert(cb, layer as u16, item);
                list.push(item);
            }
            for (layer, list) in model.iter().enumerate() {
                let mut got = Vec::new();
                grid.for_each(cb, &[layer as u16..=layer as u16], |i| got.push(i));
                assert_eq!(&got, list, "item {item}, layer {layer}");
            }
        }
    }
}
