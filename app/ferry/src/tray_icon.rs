//! What the tray icon says: the worst tunnel state, drawn as a shape (not only a colour, so it
//! reads for colour-blind people and on light and dark panels alike), and a one-line summary
//! for the tooltip. Pure functions, unit-tested below.

use ferry_core::tunnel::{TunnelSnapshot, TunnelState};

/// The sizes of the icon pixmaps handed to the tray host (it picks the nearest).
pub const SIZES: [u32; 5] = [16, 22, 24, 32, 48];

/// The overall state of an instance's tunnels, worst first wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// No tunnel runs: a hollow ring.
    Idle,
    /// Every running tunnel serves: a filled disc.
    Active,
    /// Some wait or are degraded: a triangle.
    Degraded,
    /// Some failed: a cross.
    Failed,
}

/// The worst state among the tunnels that are not stopped.
pub fn health(tunnels: &[TunnelSnapshot]) -> Health {
    tunnels
        .iter()
        .filter_map(|t| match t.state {
            TunnelState::Stopped => None,
            TunnelState::Active => Some(Health::Active),
            TunnelState::Starting | TunnelState::Waiting | TunnelState::Degraded => {
                Some(Health::Degraded)
            }
            TunnelState::Failed => Some(Health::Failed),
        })
        .max()
        .unwrap_or(Health::Idle)
}

/// "3 tunnels active, 1 failed: api (pod not ready)"; "No tunnels running" when idle.
pub fn summary(tunnels: &[TunnelSnapshot]) -> String {
    let count = |s: TunnelState| tunnels.iter().filter(|t| t.state == s).count();
    let active = count(TunnelState::Active);
    let mut parts = Vec::new();
    if active > 0 {
        parts.push(format!("{active} {} active", plural(active)));
    }
    for (state, word) in [
        (TunnelState::Degraded, "degraded"),
        (TunnelState::Waiting, "waiting"),
        (TunnelState::Starting, "starting"),
        (TunnelState::Failed, "failed"),
    ] {
        let n = count(state);
        if n > 0 {
            parts.push(if parts.is_empty() {
                format!("{n} {} {word}", plural(n))
            } else {
                format!("{n} {word}")
            });
        }
    }
    if parts.is_empty() {
        return "No tunnels running".into();
    }
    let mut text = parts.join(", ");
    // Name the worst one, so the tooltip alone says what to look at.
    let worst = tunnels
        .iter()
        .filter(|t| !matches!(t.state, TunnelState::Active | TunnelState::Stopped))
        .max_by_key(|t| t.state == TunnelState::Failed);
    if let Some(t) = worst {
        let name = t
            .spec
            .alias
            .clone()
            .unwrap_or_else(|| t.spec.target.to_kubectl());
        match &t.detail {
            Some(detail) => text.push_str(&format!(": {name} ({detail})")),
            None => text.push_str(&format!(": {name}")),
        }
    }
    text
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "tunnel" } else { "tunnels" }
}

/// The icon at `size`×`size` as ARGB32 in network byte order (what StatusNotifierItem wants).
pub fn argb32(health: Health, size: u32) -> Vec<u8> {
    rgba(health, size)
        .chunks_exact(4)
        .flat_map(|p| [p[3], p[0], p[1], p[2]])
        .collect()
}

/// The icon at `size`×`size` as RGBA (for PNG files and the window).
pub fn rgba(health: Health, size: u32) -> Vec<u8> {
    let (r, g, b) = match health {
        Health::Idle => (0x9a, 0xa4, 0xb1),
        Health::Active => (0x2e, 0xb8, 0x5c),
        Health::Degraded => (0xf0, 0xa5, 0x00),
        Health::Failed => (0xe5, 0x48, 0x4d),
    };
    let s = size as f32;
    let mut out = Vec::with_capacity((size * size * 4) as usize);
    for y in 0..size {
        for x in 0..size {
            // Supersample 4×4 per pixel for smooth edges at 16 px.
            let mut inside = 0u32;
            let mut rim = 0u32;
            for sy in 0..4 {
                for sx in 0..4 {
                    let px = (x as f32 + (sx as f32 + 0.5) / 4.0) / s;
                    let py = (y as f32 + (sy as f32 + 0.5) / 4.0) / s;
                    match shape(health, px, py) {
                        Cover::Fill => inside += 1,
                        Cover::Rim => rim += 1,
                        Cover::None => {}
                    }
                }
            }
            let covered = inside + rim;
            if covered == 0 {
                out.extend_from_slice(&[0, 0, 0, 0]);
                continue;
            }
            // A dark rim around every shape keeps it readable on light panels; the fill keeps
            // it readable on dark ones.
            let mix = |c: u32| ((c * inside + 0x20 * rim) / covered) as u8;
            out.extend_from_slice(&[mix(r), mix(g), mix(b), (covered * 255 / 16) as u8]);
        }
    }
    out
}

enum Cover {
    Fill,
    Rim,
    None,
}

/// Whether the point (in 0..1 coordinates) is inside the shape, on its dark rim, or outside.
fn shape(health: Health, x: f32, y: f32) -> Cover {
    const RIM: f32 = 0.07;
    let (dx, dy) = (x - 0.5, y - 0.5);
    let r = (dx * dx + dy * dy).sqrt();
    match health {
        Health::Active => disc(r, 0.44, RIM),
        Health::Idle => {
            // A ring: the disc minus its middle.
            if !(0.18..=0.44).contains(&r) {
                Cover::None
            } else if !(0.18 + RIM..=0.44 - RIM).contains(&r) {
                Cover::Rim
            } else {
                Cover::Fill
            }
        }
        Health::Degraded => {
            // An upright triangle: apex at the top, base at the bottom.
            let top = 0.08;
            let bottom = 0.9;
            if y < top || y > bottom {
                return Cover::None;
            }
            let half = 0.46 * (y - top) / (bottom - top);
            let edge = half - dx.abs();
            if edge < 0.0 {
                Cover::None
            } else if edge < RIM || bottom - y < RIM {
                Cover::Rim
            } else {
                Cover::Fill
            }
        }
        Health::Failed => {
            // A thick diagonal cross.
            let d1 = (dx - dy).abs() / std::f32::consts::SQRT_2;
            let d2 = (dx + dy).abs() / std::f32::consts::SQRT_2;
            let arm = 0.13;
            let d = d1.min(d2);
            if dx.abs() > 0.42 || dy.abs() > 0.42 || d > arm {
                Cover::None
            } else if d > arm - RIM * 0.8 || dx.abs() > 0.42 - RIM || dy.abs() > 0.42 - RIM {
                Cover::Rim
            } else {
                Cover::Fill
            }
        }
    }
}

fn disc(r: f32, radius: f32, rim: f32) -> Cover {
    if r > radius {
        Cover::None
    } else if r > radius - rim {
        Cover::Rim
    } else {
        Cover::Fill
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opaque pixels of an icon, as a bitmap, to compare shapes regardless of colour.
    fn mask(health: Health, size: u32) -> Vec<bool> {
        rgba(health, size).chunks(4).map(|p| p[3] > 128).collect()
    }

    #[test]
    fn every_state_has_its_own_shape_at_every_size() {
        let all = [
            Health::Idle,
            Health::Active,
            Health::Degraded,
            Health::Failed,
        ];
        for size in SIZES {
            for (i, a) in all.iter().enumerate() {
                let ma = mask(*a, size);
                assert!(ma.iter().any(|p| *p), "{a:?} at {size} px is blank");
                for b in &all[i + 1..] {
                    let mb = mask(*b, size);
                    let differ = ma.iter().zip(&mb).filter(|(x, y)| x != y).count();
                    assert!(
                        differ * 10 > ma.len(),
                        "{a:?} and {b:?} look alike at {size} px ({differ} pixels differ)"
                    );
                }
            }
        }
    }

    #[test]
    fn argb_is_rgba_reordered() {
        let rgba = rgba(Health::Failed, 16);
        let argb = argb32(Health::Failed, 16);
        assert_eq!(rgba.len(), 16 * 16 * 4);
        for (p, q) in rgba.chunks(4).zip(argb.chunks(4)) {
            assert_eq!([q[1], q[2], q[3], q[0]], [p[0], p[1], p[2], p[3]]);
        }
    }
}
