//! A minimal ONNX model (`y = Relu(x)`, x: float32 [1,3,H,W]) encoded by hand, so that
//! `stylize doctor` can try each provider without shipping or finding a model file.

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_varint(out: &mut Vec<u8>, field: u32, v: u64) {
    varint(out, u64::from(field) << 3);
    varint(out, v);
}

fn field_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    varint(out, (u64::from(field) << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `ValueInfoProto` of a float tensor `[1, 3, H, W]` with symbolic H and W.
fn value_info(name: &str) -> Vec<u8> {
    let mut shape = Vec::new();
    for dim in [Ok(1u64), Ok(3), Err("H"), Err("W")] {
        let mut d = Vec::new();
        match dim {
            Ok(v) => field_varint(&mut d, 1, v),
            Err(p) => field_bytes(&mut d, 2, p.as_bytes()),
        }
        field_bytes(&mut shape, 1, &d);
    }
    let mut tensor = Vec::new();
    field_varint(&mut tensor, 1, 1); // FLOAT
    field_bytes(&mut tensor, 2, &shape);
    let mut ty = Vec::new();
    field_bytes(&mut ty, 1, &tensor);
    let mut vi = Vec::new();
    field_bytes(&mut vi, 1, name.as_bytes());
    field_bytes(&mut vi, 2, &ty);
    vi
}

/// The serialised model.
pub fn relu_model() -> Vec<u8> {
    let mut node = Vec::new();
    field_bytes(&mut node, 1, b"x");
    field_bytes(&mut node, 2, b"y");
    field_bytes(&mut node, 4, b"Relu");
    let mut graph = Vec::new();
    field_bytes(&mut graph, 1, &node);
    field_bytes(&mut graph, 2, b"probe");
    field_bytes(&mut graph, 11, &value_info("x"));
    field_bytes(&mut graph, 12, &value_info("y"));
    let mut opset = Vec::new();
    field_bytes(&mut opset, 1, b"");
    field_varint(&mut opset, 2, 13);
    let mut model = Vec::new();
    field_varint(&mut model, 1, 7); // IR version 7
    field_bytes(&mut model, 2, b"stylize");
    field_bytes(&mut model, 7, &graph);
    field_bytes(&mut model, 8, &opset);
    model
}

/// Writes the probe model to a temporary file and returns its path.
pub fn write_probe_model() -> std::io::Result<std::path::PathBuf> {
    let path = std::env::temp_dir().join(format!("stylize-probe-{}.onnx", std::process::id()));
    std::fs::write(&path, relu_model())?;
    Ok(path)
}
