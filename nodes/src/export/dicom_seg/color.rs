//! Recommended display colours: a distinct sRGB colour per class id, as DICOM's scaled CIELab
//! (PS3.3 C.10.7.1.1: L* 0..100 and a*, b* -128..127 mapped onto 0..65535).

/// The colour of class `id`: hues spaced by the golden ratio, so neighbouring ids differ.
pub fn cielab_of_class(id: u32) -> [u16; 3] {
    let hue = (id as f64 * 0.618_033_988_749_895).fract();
    dicom_lab(srgb_to_lab(hsv_to_rgb(hue, 0.7, 0.9)))
}

fn hsv_to_rgb(h: f64, s: f64, v: f64) -> [f64; 3] {
    let h6 = h * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match i as i64 % 6 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// sRGB (0..1, gamma encoded) to CIE L*a*b* with the D65 white point.
fn srgb_to_lab(rgb: [f64; 3]) -> [f64; 3] {
    let lin = rgb.map(|c| {
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    });
    let [r, g, b] = lin;
    let x = 0.4124564 * r + 0.3575761 * g + 0.1804375 * b;
    let y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b;
    let z = 0.0193339 * r + 0.1191920 * g + 0.9503041 * b;
    let f = |t: f64| {
        let d: f64 = 6.0 / 29.0;
        if t > d * d * d {
            t.cbrt()
        } else {
            t / (3.0 * d * d) + 4.0 / 29.0
        }
    };
    let (fx, fy, fz) = (f(x / 0.95047), f(y), f(z / 1.08883));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

fn dicom_lab([l, a, b]: [f64; 3]) -> [u16; 3] {
    let scale = |v: f64, lo: f64, hi: f64| {
        (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 65535.0).round() as u16
    };
    [
        scale(l, 0.0, 100.0),
        scale(a, -128.0, 127.0),
        scale(b, -128.0, 127.0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn white_is_l100_a0_b0() {
        let [l, a, b] = srgb_to_lab([1.0, 1.0, 1.0]);
        assert!((l - 100.0).abs() < 1e-3 && a.abs() < 1e-2 && b.abs() < 1e-2);
        assert_ne!(cielab_of_class(1), cielab_of_class(2));
    }
}
