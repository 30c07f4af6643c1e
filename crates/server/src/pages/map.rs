//! The dashboard's map of the 18 regions: a tile-grid cartogram, one rounded square per region placed
//! roughly where the region lies (metropolitan France), the five overseas regions in an inset row. Only the
//! geometry is here; the SVG is written by the `map` partial.

use serde::Serialize;

/// Side of a tile and the gap between tiles, in SVG units.
const TILE: f32 = 72.0;
const GAP: f32 = 8.0;
const MARGIN: f32 = 12.0;

/// (INSEE code, short code shown on the tile, column, row) of metropolitan France. Columns and rows may be
/// fractional: the south and Corsica sit between the columns above them, as on a map.
const METROPOLE: [(&str, &str, f32, f32); 13] = [
    ("32", "HDF", 2.0, 0.0),
    ("28", "NOR", 1.0, 1.0),
    ("11", "IDF", 2.0, 1.0),
    ("44", "GES", 3.0, 1.0),
    ("53", "BRE", 0.0, 2.0),
    ("52", "PDL", 1.0, 2.0),
    ("24", "CVL", 2.0, 2.0),
    ("27", "BFC", 3.0, 2.0),
    ("75", "NAQ", 1.0, 3.0),
    ("84", "ARA", 2.5, 3.0),
    ("76", "OCC", 1.5, 4.0),
    ("93", "PAC", 2.9, 4.0),
    ("94", "COR", 4.0, 4.6),
];

/// The overseas regions, in the inset row, in code order.
const OVERSEAS: [(&str, &str); 5] = [
    ("01", "GUA"),
    ("02", "MTQ"),
    ("03", "GUY"),
    ("04", "REU"),
    ("06", "MAY"),
];

/// Rows of metropolitan tiles, then the inset (its caption above it).
const INSET_ROW: f32 = 5.9;

#[derive(Debug, Clone, Serialize)]
pub struct Tile {
    pub code: String,
    pub short: String,
    pub x: f32,
    pub y: f32,
    pub size: f32,
    /// Centre of the tile, for its text.
    pub cx: f32,
    pub cy: f32,
    /// Baselines of the short code and of the stage number.
    pub short_y: f32,
    pub number_y: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Geometry {
    pub width: f32,
    pub height: f32,
    /// The frame around the overseas inset and where its caption goes.
    pub inset_x: f32,
    pub inset_y: f32,
    pub inset_width: f32,
    pub inset_height: f32,
    pub inset_caption_x: f32,
    pub inset_caption_y: f32,
}

fn tile(code: &str, short: &str, col: f32, row: f32) -> Tile {
    let x = MARGIN + col * (TILE + GAP);
    let y = MARGIN + row * (TILE + GAP);
    Tile {
        code: code.to_owned(),
        short: short.to_owned(),
        x,
        y,
        size: TILE,
        cx: x + TILE / 2.0,
        cy: y + TILE / 2.0,
        short_y: y + TILE / 2.0 - 2.0,
        number_y: y + TILE / 2.0 + 18.0,
    }
}

/// Every region's tile, in the order above, and the frame of the drawing.
pub fn layout() -> (Vec<Tile>, Geometry) {
    let mut tiles: Vec<Tile> = METROPOLE
        .iter()
        .map(|(code, short, col, row)| tile(code, short, *col, *row))
        .collect();
    tiles.extend(
        OVERSEAS
            .iter()
            .enumerate()
            .map(|(i, (code, short))| tile(code, short, i as f32, INSET_ROW)),
    );
    let inset_y = MARGIN + INSET_ROW * (TILE + GAP) - GAP - 22.0;
    let geometry = Geometry {
        width: 2.0 * MARGIN + 5.0 * (TILE + GAP),
        height: MARGIN + (INSET_ROW + 1.0) * (TILE + GAP) + MARGIN,
        inset_x: MARGIN - GAP / 2.0,
        inset_y,
        inset_width: 5.0 * (TILE + GAP),
        inset_height: TILE + GAP + 22.0 + GAP,
        inset_caption_x: MARGIN + 4.0,
        inset_caption_y: inset_y + 16.0,
    };
    (tiles, geometry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_has_one_tile_and_none_overlap() {
        let (tiles, geometry) = layout();
        let mut codes: Vec<&str> = tiles.iter().map(|t| t.code.as_str()).collect();
        codes.sort_unstable();
        let expected: Vec<&str> = incubator_store::regions::REGIONS
            .iter()
            .map(|(code, _, _)| *code)
            .collect();
        assert_eq!(codes, expected);
        for (i, a) in tiles.iter().enumerate() {
            assert!(a.x >= 0.0 && a.x + a.size <= geometry.width, "{}", a.code);
            assert!(a.y >= 0.0 && a.y + a.size <= geometry.height, "{}", a.code);
            for b in &tiles[i + 1..] {
                let apart = a.x + a.size <= b.x
                    || b.x + b.size <= a.x
                    || a.y + a.size <= b.y
                    || b.y + b.size <= a.y;
                assert!(apart, "{} overlaps {}", a.code, b.code);
            }
        }
    }
}
