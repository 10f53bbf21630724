//! Timed routes: a mover at each vertex at its time, moving along the
//! geodesic at constant speed in between.

use crate::ellipsoid::{direct, distance_m, inverse};
use crate::LonLat;

/// A timed route. `times_ms` has one strictly increasing time per vertex.
/// Before the first time the mover waits at the first vertex, after the last
/// at the last.
#[derive(Debug, Clone, Copy)]
pub struct TimedPath<'a> {
    pub vertices: &'a [LonLat],
    pub times_ms: &'a [i64],
}

/// The closest approach of two movers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MovingApproach {
    pub distance_m: f64,
    pub time_ms: i64,
    pub on_a: LonLat,
    pub on_b: LonLat,
}

/// Samples per closest-approach scan. With pieces of a few kilometres and
/// minutes, a scan this fine brackets the minimum of the (smooth, locally
/// unimodal) distance, which a ternary search then narrows to the millisecond.
const SCAN_SAMPLES: i64 = 1_000;

impl TimedPath<'_> {
    /// Where the mover is at `time_ms`.
    pub fn position_at(&self, time_ms: i64) -> LonLat {
        let (v, t) = (self.vertices, self.times_ms);
        let last = v.len() - 1;
        if time_ms <= t[0] {
            return v[0];
        }
        if time_ms >= t[last] {
            return v[last];
        }
        let i = t.partition_point(|&x| x <= time_ms) - 1;
        let fraction = (time_ms - t[i]) as f64 / (t[i + 1] - t[i]) as f64;
        let (length_m, azi, _) = inverse(v[i], v[i + 1]);
        direct(v[i], azi, length_m * fraction).0
    }

    /// The route travelled during `[from_ms, to_ms]`: the positions at both
    /// ends and every vertex passed in between.
    pub fn subpath(&self, from_ms: i64, to_ms: i64) -> Vec<LonLat> {
        let mut swept = vec![self.position_at(from_ms)];
        for (i, &t) in self.times_ms.iter().enumerate() {
            if t > from_ms && t < to_ms {
                swept.push(self.vertices[i]);
            }
        }
        swept.push(self.position_at(to_ms));
        swept.dedup();
        swept
    }
}

fn approach_at(a: &TimedPath, b: &TimedPath, time_ms: i64) -> MovingApproach {
    let (on_a, on_b) = (a.position_at(time_ms), b.position_at(time_ms));
    MovingApproach {
        distance_m: distance_m(on_a, on_b),
        time_ms,
        on_a,
        on_b,
    }
}

/// The scan instants: evenly spread, plus every vertex time of either mover,
/// where the distance may turn sharply.
fn scan_times(a: &TimedPath, b: &TimedPath, from_ms: i64, to_ms: i64) -> Vec<i64> {
    let span = (to_ms - from_ms).max(0);
    let mut times: Vec<i64> = (0..=SCAN_SAMPLES)
        .map(|k| from_ms + span * k / SCAN_SAMPLES)
        .collect();
    times.extend(
        a.times_ms
            .iter()
            .chain(b.times_ms)
            .copied()
            .filter(|&t| t > from_ms && t < to_ms),
    );
    times.sort_unstable();
    times.dedup();
    times
}

/// The closest approach of two movers within `[from_ms, to_ms]`.
pub fn closest_approach(a: &TimedPath, b: &TimedPath, from_ms: i64, to_ms: i64) -> MovingApproach {
    let times = scan_times(a, b, from_ms, to_ms);
    let samples: Vec<MovingApproach> = times.iter().map(|&t| approach_at(a, b, t)).collect();
    let k = (0..samples.len())
        .min_by(|&i, &j| samples[i].distance_m.total_cmp(&samples[j].distance_m))
        .unwrap_or(0);
    let mut best = samples[k];
    let (mut lo, mut hi) = (times[k.saturating_sub(1)], times[(k + 1).min(times.len() - 1)]);
    while hi - lo > 2 {
        let (m1, m2) = (lo + (hi - lo) / 3, hi - (hi - lo) / 3);
        if approach_at(a, b, m1).distance_m <= approach_at(a, b, m2).distance_m {
            hi = m2;
        } else {
            lo = m1;
        }
    }
    for t in lo..=hi {
        let candidate = approach_at(a, b, t);
        if candidate.distance_m < best.distance_m {
            best = candidate;
        }
    }
    best
}

/// The first and last instants in `[from_ms, to_ms]` at which the movers are
/// closer than `limit_m`, or `None` if they never are.
pub fn time_span_below(
    a: &TimedPath,
    b: &TimedPath,
    from_ms: i64,
    to_ms: i64,
    limit_m: f64,
) -> Option<(i64, i64)> {
    let below = |t: i64| approach_at(a, b, t).distance_m < limit_m;
    let times = scan_times(a, b, from_ms, to_ms);
    let closest = closest_approach(a, b, from_ms, to_ms);
    if closest.distance_m >= limit_m {
        return None;
    }
    // The first instant below: between the last scan instant above before
    // the closest approach (or the start) and the approach itself.
    let first = {
        let mut lo = times
            .iter()
            .rev()
            .copied()
            .find(|&t| t < closest.time_ms && !below(t));
        let mut hi = closest.time_ms;
        match lo.as_mut() {
            None => from_ms,
            Some(lo) => {
                while hi - *lo > 1 {
                    let mid = *lo + (hi - *lo) / 2;
                    if below(mid) {
                        hi = mid;
                    } else {
                        *lo = mid;
                    }
                }
                hi
            }
        }
    };
    let last = {
        let mut hi = times.iter().copied().find(|&t| t > closest.time_ms && !below(t));
        let mut lo = closest.time_ms;
        match hi.as_mut() {
            None => to_ms,
            Some(hi) => {
                while *hi - lo > 1 {
                    let mid = lo + (*hi - lo) / 2;
                    if below(mid) {
                        lo = mid;
                    } else {
                        *hi = mid;
                    }
                }
                lo
            }
        }
    };
    Some((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_on_movers_meet_in_the_middle() {
        let (a_route, b_route) = (
            [LonLat::new(10.0, 0.0), LonLat::new(10.2, 0.0)],
            [LonLat::new(10.2, 0.0), LonLat::new(10.0, 0.0)],
        );
        let times = [0, 3_600_000];
        let a = TimedPath {
            vertices: &a_route,
            times_ms: &times,
        };
        let b = TimedPath {
            vertices: &b_route,
            times_ms: &times,
        };
        let approach = closest_approach(&a, &b, 0, 3_600_000);
        assert!(approach.distance_m < 1.0, "{approach:?}");
        assert!((approach.time_ms - 1_800_000).abs() < 100, "{approach:?}");
        let (first, last) = time_span_below(&a, &b, 0, 3_600_000, 1_000.0).unwrap();
        // 0.2° of equator (22.264 km) closed at 44.528 km/h: the last km takes 80.85 s.
        assert!(
            (first - 1_719_150).abs() < 500 && (last - 1_880_850).abs() < 500,
            "{first} {last}"
        );
    }

    #[test]
    fn the_swept_route_is_what_is_travelled_in_the_window() {
        let route = [
            LonLat::new(10.0, 0.0),
            LonLat::new(10.1, 0.0),
            LonLat::new(10.2, 0.0),
        ];
        let path = TimedPath {
            vertices: &route,
            times_ms: &[0, 1_000, 2_000],
        };
        let swept = path.subpath(500, 1_500);
        assert_eq!(swept.len(), 3);
        assert!((swept[0].lon_deg - 10.05).abs() < 1e-9 && swept[1] == route[1]);
        assert_eq!(path.subpath(3_000, 4_000), vec![route[2]]);
    }
}
