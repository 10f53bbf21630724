//! The benchmark workload, as the engine issue specifies it: activities of
//! 1,000 parties, 70 % in 20 Gaussian hotspots (sigma 15 km) and 30 % spread
//! uniformly over a 10° × 10° box; corridors of 2–6 vertices, 5–25 km long,
//! 200–1,000 m wide; polygons of 4–50 vertices covering 1–100 km²; sites of
//! 0.1–5 km radius; windows over 7 days with a median length of 60 minutes.

use deconflict_engine::{ActivityKind, ActivitySpec, FootprintSpec, PartyId, TimeWindow, Timestamp};
use deconflict_geodesy::LonLat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal};

/// Where and when the workload is spread.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadShape {
    pub parties: u64,
    pub west_deg: f64,
    pub south_deg: f64,
    pub box_size_deg: f64,
    pub hotspots: usize,
    pub hotspot_share: f64,
    pub hotspot_sigma_m: f64,
    pub span_days: i64,
    pub median_duration_min: f64,
    /// Epoch of the first instant of the span.
    pub start: Timestamp,
}

impl Default for WorkloadShape {
    /// North-east Syria and around: 36–46° E, 32–42° N.
    fn default() -> Self {
        Self {
            parties: 1_000,
            west_deg: 36.0,
            south_deg: 32.0,
            box_size_deg: 10.0,
            hotspots: 20,
            hotspot_share: 0.7,
            hotspot_sigma_m: 15_000.0,
            span_days: 7,
            median_duration_min: 60.0,
            // 2022-10-08T00:00:00Z
            start: Timestamp(1_665_187_200_000),
        }
    }
}

/// A generator of activities; the same seed gives the same activities.
#[derive(Debug)]
pub struct Workload {
    shape: WorkloadShape,
    rng: ChaCha8Rng,
    hotspot_centres: Vec<LonLat>,
}

const METRES_PER_DEG_LAT: f64 = 111_320.0;

/// Moves `metres_east`, `metres_north` from `origin` on a local flat
/// approximation: good enough to *generate* shapes, whose exact geometry is
/// whatever these vertices then describe on the ellipsoid.
fn offset(origin: LonLat, metres_east: f64, metres_north: f64) -> LonLat {
    let lat = (origin.lat_deg + metres_north / METRES_PER_DEG_LAT).clamp(-89.9, 89.9);
    let lon = origin.lon_deg + metres_east / (METRES_PER_DEG_LAT * lat.to_radians().cos());
    LonLat::new(lon, lat)
}

impl Workload {
    pub fn new(seed: u64, shape: WorkloadShape) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let hotspot_centres = (0..shape.hotspots)
            .map(|_| {
                LonLat::new(
                    shape.west_deg + rng.gen::<f64>() * shape.box_size_deg,
                    shape.south_deg + rng.gen::<f64>() * shape.box_size_deg,
                )
            })
            .collect();
        Self {
            shape,
            rng,
            hotspot_centres,
        }
    }

    pub fn shape(&self) -> &WorkloadShape {
        &self.shape
    }

    /// `count` activities.
    pub fn activities(&mut self, count: usize) -> Vec<ActivitySpec> {
        (0..count).map(|_| self.next_activity()).collect()
    }

    fn anchor(&mut self) -> LonLat {
        let s = &self.shape;
        if self.rng.gen::<f64>() < s.hotspot_share && !self.hotspot_centres.is_empty() {
            let centre = self.hotspot_centres[self.rng.gen_range(0..self.hotspot_centres.len())];
            let normal = Normal::new(0.0, s.hotspot_sigma_m).expect("positive sigma");
            let (east, north) = (normal.sample(&mut self.rng), normal.sample(&mut self.rng));
            offset(centre, east, north)
        } else {
            LonLat::new(
                s.west_deg + self.rng.gen::<f64>() * s.box_size_deg,
                s.south_deg + self.rng.gen::<f64>() * s.box_size_deg,
            )
        }
    }

    fn window(&mut self) -> TimeWindow {
        let span_ms = self.shape.span_days * 86_400_000;
        let start = self.shape.start.plus_ms(self.rng.gen_range(0..span_ms));
        // Log-normal: median 60 min, a long tail of day-long activities.
        let minutes = LogNormal::new(self.shape.median_duration_min.ln(), 1.0)
            .expect("finite")
            .sample(&mut self.rng);
        let duration_ms = (minutes.clamp(1.0, 3.0 * 1440.0) * 60_000.0) as i64;
        TimeWindow::new(start, Some(start.plus_ms(duration_ms)))
    }

    pub fn next_activity(&mut self) -> ActivitySpec {
        let anchor = self.anchor();
        let window = self.window();
        let party = PartyId(self.rng.gen_range(0..self.shape.parties));
        let roll: f64 = self.rng.gen();
        let (kind, footprint) = if roll < 0.5 {
            let kind = if self.rng.gen::<bool>() {
                ActivityKind::Patrol
            } else {
                ActivityKind::Convoy
            };
            (kind, self.corridor(anchor))
        } else if roll < 0.7 {
            let kind = if self.rng.gen::<bool>() {
                ActivityKind::Area
            } else {
                ActivityKind::Exercise
            };
            (kind, self.polygon(anchor))
        } else {
            let radius_m = self.rng.gen_range(100.0..5_000.0);
            (
                ActivityKind::Site,
                FootprintSpec::Point {
                    center: anchor,
                    radius_m,
                },
            )
        };
        ActivitySpec {
            party,
            kind,
            window,
            footprint,
            alt_min_m: None,
            alt_max_m: None,
            separation_m: None,
            vertical_separation_m: None,
        }
    }

    /// A random walk of 2–6 vertices, 5–25 km long in total.
    fn corridor(&mut self, start: LonLat) -> FootprintSpec {
        let vertices = self.rng.gen_range(2..=6);
        let length_m = self.rng.gen_range(5_000.0..25_000.0);
        let leg_m = length_m / (vertices - 1) as f64;
        let mut heading = self.rng.gen_range(0.0..std::f64::consts::TAU);
        let mut route = vec![start];
        for _ in 1..vertices {
            heading += self.rng.gen_range(-0.8..0.8);
            let last = *route.last().expect("non-empty");
            route.push(offset(last, leg_m * heading.sin(), leg_m * heading.cos()));
        }
        FootprintSpec::LineString {
            route,
            corridor_m: self.rng.gen_range(200.0..1_000.0),
            waypoint_times: None,
        }
    }

    /// A star-shaped ring of 4–50 corners around `centre` covering about
    /// 1–100 km².
    fn polygon(&mut self, centre: LonLat) -> FootprintSpec {
        // At least four corners: with three, a jittered gap could exceed π.
        let corners = self.rng.gen_range(4..=50);
        let area_m2 = self.rng.gen_range(1e6..1e8);
        // A regular n-gon of circumradius r covers n/2 · r² · sin(2π/n).
        let n = corners as f64;
        let radius_m = (2.0 * area_m2 / (n * (std::f64::consts::TAU / n).sin())).sqrt();
        // One corner per equal sector, jittered within it: every gap is
        // below π, so the centre sees every edge and the ring is simple.
        let sector = std::f64::consts::TAU / n;
        let mut ring: Vec<LonLat> = (0..corners)
            .map(|k| {
                let angle = (k as f64 + self.rng.gen_range(0.1..0.9)) * sector;
                let r = radius_m * self.rng.gen_range(0.75..1.0);
                offset(centre, r * angle.sin(), r * angle.cos())
            })
            .collect();
        ring.push(ring[0]);
        FootprintSpec::Polygon { rings: vec![ring] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deconflict_engine::{Engine, EngineConfig};

    #[test]
    fn same_seed_same_activities() {
        let a = Workload::new(7, WorkloadShape::default()).activities(50);
        let b = Workload::new(7, WorkloadShape::default()).activities(50);
        let c = Workload::new(8, WorkloadShape::default()).activities(50);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn every_generated_activity_is_valid() {
        let engine = Engine::new(EngineConfig::default());
        for spec in Workload::new(1, WorkloadShape::default()).activities(20_000) {
            if let Err(error) = engine.validate(&spec) {
                panic!("{error}: {spec:?}");
            }
        }
    }
}
