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
        }
    }

    fn row(&self, lat_deg: f64) -> u32 {
        (((lat_deg + 90.0) / self.cell_deg).floor().max(0.0) as u32).min(self.lat_cells - 1)
    }

    fn column(&self, lon_deg: f64) -> u32 {
        (((lon_deg + 180.0) / self.cell_deg).floor().max(0.0) as u32).min(self.lon_cells - 1)
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
            let layers = self.cells.entry(k).or_default();
            match layers.binary_search_by_key(&layer, |l| l.layer) {
                Ok(at) => layers[at].items.push(item),
                Err(at) => layers.insert(
                    at,
                    Layer {
                        layer,
                        items: vec![item],
                    },
                ),
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
            if let Some(i) = items.iter().position(|&x| x == item) {
                items.swap_remove(i);
            }
            if items.is_empty() {
                layers.remove(at);
            }
            if layers.is_empty() {
                self.cells.remove(&k);
            }
        }
    }

    /// Removes every item.
    pub(crate) fn clear(&mut self) {
        self.cells.clear();
    }

    /// Calls `f` with every item filed in a cell of `cb` in a layer within
    /// one of `layers` (disjoint ranges); an item filed in several such
    /// cells comes once per cell.
    pub(crate) fn for_each(&self, cb: CellBox, layers: &[RangeInclusive<u16>], mut f: impl FnMut(u32)) {
        for k in self.keys(cb) {
            let Some(cell) = self.cells.get(&k) else { continue };
            // A cell has a layer per 500 m of height with aircraft in it; a
            // query wants two or three: find them rather than test each.
            for range in layers {
                let first = cell.partition_point(|l| l.layer < *range.start());
                for layer in cell[first..].iter().take_while(|l| l.layer <= *range.end()) {
                    layer.items.iter().for_each(|&i| f(i));
                }
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
        table + lists
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
}
