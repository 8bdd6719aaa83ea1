//! `skyshard bench codec`: the codec's stages in GB/s per core, each beside a
//! baseline measured in the same run.
//!
//! | stage | ours | baseline |
//! |---|---|---|
//! | seal, open | the selected AEAD engine, through the codec's STREAM sealing | ring's `LessSafeKey` on the same buffers |
//! | encode | the selected GF kernel via `codec::rlnc::encode` | ISA-L `ec_encode_data` (tables prepared once); reed-solomon-erasure's `galois_8` |
//! | decode | Gaussian elimination + kernel, per segment | ISA-L `gf_invert_matrix` + `ec_init_tables` + `ec_encode_data`, per segment |
//! | recode | one new fragment from `k`: combine coefficients + kernel | ISA-L one-row `ec_encode_data` |
//! | seal+encode | `ObjectEncoder::encode_segment`: seal, code, records, CRC32C | ring seal + ISA-L encode; the same + ISA-L `crc32_iscsi` of each record |
//! | open+decode | `ObjectDecoder::decode_segment`: CRC32C, plan, decode, open | ISA-L decode + ring open; the same + ISA-L `crc32_iscsi` of each record |
//!
//! Throughput counts object (plaintext) bytes over the calling thread's CPU time.
//! ISA-L is loaded at run time when installed (Debian's `libisal2`); without it the
//! GF rows compare against reed-solomon-erasure only. Every baseline's output is
//! compared with ours: a benchmark of wrong answers is worthless.

use std::sync::Arc;
use std::time::Duration;

use codec::fragment::{record_checksum, symbol_len};
use codec::object::segment_buffer_capacity;
use codec::rlnc::{combine, encode, plan_decode};
use codec::seal::{SegmentCipher, SegmentFlags, segment_aad, segment_nonce};
use codec::{CodecError, CodingMatrix, CodingParams, ObjectDecoder, ObjectEncoder, SegmentLayout, VersionId};
use offload::aead::{AeadEngine, DataKey, TAG_LEN, Tag};
use offload::crc::Crc32c;
use offload::gf::GfKernel;
use offload::isal::{IsalCrc, IsalKernel};
use offload::random::{SecureRandom, SeededRandom};
use offload::{AlignedBuf, EngineChoice, Offload, OffloadConfig, SelectError, Selection, probe};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use super::{MachineInfo, gbps, median, thread_cpu};
use gateway::config::units::{format_size, parse_size};

/// Arguments of `skyshard bench codec`.
#[derive(Debug, Clone, clap::Args)]
pub struct CodecBenchArgs {
    /// Object size (K, M, G suffixes are powers of 1024).
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    pub size: u64,
    /// Segment size.
    #[arg(long, default_value = "4M", value_parser = parse_size)]
    pub segment_size: u64,
    /// Coding parameters as `k,n`; repeat for several.
    #[arg(long = "kn", value_parser = parse_kn, default_values = ["4,6", "8,12", "16,24"])]
    pub kn: Vec<(u8, u8)>,
    /// Rounds per figure; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// AEAD engine to measure as "ours" (`auto`, `ring`, `rustcrypto`, …).
    #[arg(long, default_value = "auto")]
    pub aead: String,
    /// GF kernel to measure as "ours" (`auto`, `gfni-avx512`, `gfni-avx2`, `avx2`, `portable`, `isal`).
    #[arg(long, default_value = "auto")]
    pub gf: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_kn(s: &str) -> Result<(u8, u8), String> {
    let (k, n) = s.split_once(',').ok_or_else(|| format!("{s:?}: expected k,n such as 4,6"))?;
    let k: u8 = k.trim().parse().map_err(|_| format!("{s:?}: k is not a number below 256"))?;
    let n: u8 = n.trim().parse().map_err(|_| format!("{s:?}: n is not a number below 256"))?;
    Ok((k, n))
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The codec refused the parameters or failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The engines asked for are not available.
    #[error(transparent)]
    Select(#[from] SelectError),
    /// A baseline and ours disagree: the figures would be meaningless.
    #[error("{0}")]
    Mismatch(String),
    /// Arguments out of range.
    #[error("{0}")]
    Invalid(String),
}

/// One line of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// Stage measured.
    pub stage: String,
    /// `k-of-n`, for coding stages.
    pub code: Option<String>,
    /// What ran as ours.
    pub ours: String,
    /// Ours, GB/s per core.
    pub ours_gbps: f64,
    /// The baseline.
    pub baseline: String,
    /// Baseline, GB/s per core.
    pub baseline_gbps: f64,
    /// Ours divided by the baseline (higher is better).
    pub ratio: f64,
}

/// The whole report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The machine.
    pub machine: MachineInfo,
    /// Engines the offload layer selected.
    pub engines: Selection,
    /// Object bytes per pass.
    pub object_bytes: u64,
    /// Segment size.
    pub segment_size: u64,
    /// Rounds per figure (median reported).
    pub rounds: usize,
    /// ISA-L, if it was loaded.
    pub isal: Option<String>,
    /// Measurements.
    pub rows: Vec<Row>,
    /// Cross-checks of outputs against the baselines.
    pub checks: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    Base,
}

/// Runs `pass` for both sides, alternating which goes first, after one warm-up each;
/// returns the median CPU time of each side.
fn compare(rounds: usize, mut pass: impl FnMut(Side) -> Duration) -> (Duration, Duration) {
    pass(Side::Ours);
    pass(Side::Base);
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        if r % 2 == 0 {
            ours.push(pass(Side::Ours));
            base.push(pass(Side::Base));
        } else {
            base.push(pass(Side::Base));
            ours.push(pass(Side::Ours));
        }
    }
    (median(ours), median(base))
}

struct Bench<'a> {
    args: &'a CodecBenchArgs,
    offload: Offload,
    isal: Option<IsalKernel>,
    rows: Vec<Row>,
    checks: Vec<String>,
}

impl Bench<'_> {
    fn row(
        &mut self,
        stage: &str,
        code: Option<(u8, u8)>,
        ours: String,
        baseline: &str,
        bytes: u64,
        t: (Duration, Duration),
    ) {
        let (o, b) = (gbps(bytes, t.0), gbps(bytes, t.1));
        self.rows.push(Row {
            stage: stage.to_string(),
            code: code.map(|(k, n)| format!("{k}-of-{n}")),
            ours,
            ours_gbps: o,
            baseline: baseline.to_string(),
            baseline_gbps: b,
            ratio: if b > 0.0 { o / b } else { 0.0 },
        });
    }
}

/// Runs the benchmark and prints the report.
pub fn run(args: &CodecBenchArgs) -> Result<(), BenchError> {
    let report = measure(args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| BenchError::Invalid(e.to_string()))?);
    } else {
        print_table(&report);
    }
    Ok(())
}

/// Measures everything and returns the report.
pub fn measure(args: &CodecBenchArgs) -> Result<Report, BenchError> {
    if args.rounds == 0 || args.size == 0 {
        return Err(BenchError::Invalid("--rounds and --size must be positive".into()));
    }
    let segment_size =
        u32::try_from(args.segment_size).map_err(|_| BenchError::Invalid("segment size too large".into()))?;
    let config = OffloadConfig {
        aead: EngineChoice::from(args.aead.clone()),
        gf: EngineChoice::from(args.gf.clone()),
        ..OffloadConfig::default()
    };
    let caps = probe();
    let (offload, selection) = Offload::select(&config, &caps)?;
    let mut bench = Bench { args, offload, isal: IsalKernel::new().ok(), rows: Vec::new(), checks: Vec::new() };

    let layout = SegmentLayout::new(args.size, segment_size);
    let rng = SeededRandom::new(0x5ca1_ab1e);
    let mut plain = vec![0u8; args.size as usize];
    rng.fill(&mut plain).map_err(CodecError::from)?;

    aead_rows(&mut bench, &layout, &plain)?;
    for &(k, n) in &args.kn {
        coding_rows(&mut bench, CodingParams::new(k, n, segment_size)?, &layout, &plain)?;
    }
    crc_rows(&mut bench);

    Ok(Report {
        machine: MachineInfo::read(),
        engines: selection,
        object_bytes: args.size,
        segment_size: args.segment_size,
        rounds: args.rounds,
        isal: caps.isal,
        rows: bench.rows,
        checks: bench.checks,
    })
}

fn segments(layout: &SegmentLayout, plain: &[u8], capacity: usize) -> Vec<AlignedBuf> {
    (0..layout.count())
        .map(|i| {
            let start = layout.offset(i) as usize;
            let mut b = AlignedBuf::with_capacity(capacity);
            b.extend_from_slice(&plain[start..start + layout.plain_len(i) as usize]);
            b
        })
        .collect()
}

fn flags(layout: &SegmentLayout, i: u64) -> SegmentFlags {
    SegmentFlags { last: i == layout.last(), compression: None }
}

fn ring_key(key: &DataKey) -> LessSafeKey {
    // A 32-byte key is always accepted by AES-256-GCM.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.expose_secret()).unwrap_or_else(|_| unreachable!()))
}

fn ring_seal(key: &LessSafeKey, version: &VersionId, layout: &SegmentLayout, i: u64, buf: &mut [u8]) -> Tag {
    let aad = segment_aad(version, i, flags(layout, i));
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(segment_nonce(i).0), Aad::from(&aad[..]), buf)
        .unwrap_or_else(|_| unreachable!("in-range buffers seal"));
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(tag.as_ref());
    Tag(t)
}

fn ring_open(
    key: &LessSafeKey,
    version: &VersionId,
    layout: &SegmentLayout,
    i: u64,
    buf: &mut [u8],
    tag: &Tag,
) -> bool {
    let aad = segment_aad(version, i, flags(layout, i));
    key.open_in_place_separate_tag(
        Nonce::assume_unique_for_key(segment_nonce(i).0),
        Aad::from(&aad[..]),
        ring::aead::Tag::from(tag.0),
        buf,
        0..,
    )
    .is_ok()
}

fn aead_rows(b: &mut Bench<'_>, layout: &SegmentLayout, plain: &[u8]) -> Result<(), BenchError> {
    let bytes = layout.object_len();
    let key = DataKey::from_bytes([0x42; 32]);
    let version = VersionId([7; 16]);
    let rk = ring_key(&key);
    let mut bufs = segments(layout, plain, layout.segment_size() as usize);

    let mut engines: Vec<(String, Arc<dyn AeadEngine>)> =
        vec![(format!("{} (selected)", b.offload.aead.name()), b.offload.aead.clone())];
    // Every other AEAD engine this build has (aws-lc with that feature; `pool` is a
    // wrapper, not an engine of its own).
    for name in offload::engine_names("aead") {
        if let Ok(e) = offload::aead_engine(name, &probe())
            && e.name() != b.offload.aead.name()
        {
            engines.push((e.name().to_string(), e));
        }
    }

    for (name, engine) in engines {
        let cipher = SegmentCipher::new(engine.as_ref(), &key, version)?;
        let t = compare(b.args.rounds, |side| {
            thread_cpu(|| {
                for (i, buf) in bufs.iter_mut().enumerate() {
                    let i = i as u64;
                    match side {
                        Side::Ours => {
                            let _ = cipher.seal(i, flags(layout, i), buf);
                        }
                        Side::Base => {
                            ring_seal(&rk, &version, layout, i, buf);
                        }
                    }
                }
            })
            .1
        });
        b.row("seal", None, name.clone(), "ring", bytes, t);

        // Open needs ciphertext: seal (untimed) before every pass.
        let t = compare(b.args.rounds, |side| {
            let tags: Vec<Tag> =
                bufs.iter_mut().enumerate().map(|(i, buf)| ring_seal(&rk, &version, layout, i as u64, buf)).collect();
            let (ok, t) = thread_cpu(|| {
                bufs.iter_mut().zip(&tags).enumerate().all(|(i, (buf, tag))| {
                    let i = i as u64;
                    match side {
                        Side::Ours => cipher.open(i, flags(layout, i), buf, tag).is_ok(),
                        Side::Base => ring_open(&rk, &version, layout, i, buf, tag),
                    }
                })
            });
            assert!(ok, "a freshly sealed segment must open");
            t
        });
        b.row("open", None, name, "ring", bytes, t);
    }
    Ok(())
}

/// Sealed, padded segments (the sources of encoding) and their tags appended.
fn sealed_sources(
    params: &CodingParams,
    layout: &SegmentLayout,
    plain: &[u8],
    cipher: &SegmentCipher,
) -> Result<Vec<AlignedBuf>, BenchError> {
    let k = usize::from(params.k());
    let mut out = segments(layout, plain, segment_buffer_capacity(params));
    for (i, buf) in out.iter_mut().enumerate() {
        let tag = cipher.seal(i as u64, flags(layout, i as u64), buf)?;
        buf.extend_from_slice(&tag.0);
        let sym = symbol_len(params.k(), buf.len() as u32);
        buf.resize(k * sym);
    }
    Ok(out)
}

fn rows_of(buf: &AlignedBuf, count: usize) -> Vec<&[u8]> {
    buf.chunks_exact(buf.len() / count).collect()
}

fn rows_of_mut(buf: &mut AlignedBuf, count: usize) -> Vec<&mut [u8]> {
    let len = buf.len() / count;
    buf.chunks_exact_mut(len).collect()
}

/// Output buffers a pipeline recycles: two segments in flight. Both sides of every
/// coding row write into the same ones, as the gateway's pipeline would.
const IN_FLIGHT: usize = 2;

/// Runs `f` on every segment and returns the CPU time it took. With `warm`, each
/// segment is first read (untimed), so that only `f`'s own work is counted with its
/// input in cache.
fn per_segment(warm: bool, segs: &[AlignedBuf], mut f: impl FnMut(usize, &AlignedBuf)) -> Duration {
    if !warm {
        return thread_cpu(|| segs.iter().enumerate().for_each(|(i, s)| f(i, s))).1;
    }
    let mut total = Duration::ZERO;
    for (i, s) in segs.iter().enumerate() {
        let words: &[u64] = bytemuck_words(s);
        std::hint::black_box(words.iter().fold(0u64, |a, &w| a ^ w));
        total += thread_cpu(|| f(i, s)).1;
    }
    total
}

/// The 8-byte words of an aligned buffer (its length rounded down).
fn bytemuck_words(buf: &AlignedBuf) -> &[u64] {
    let whole = buf.len() / 8 * 8;
    // An AlignedBuf starts 64-byte aligned, so the cast cannot fail.
    bytemuck::try_cast_slice(&buf[..whole]).unwrap_or(&[])
}

/// One GF implementation applying a matrix to rows.
#[derive(Clone, Copy)]
enum Gf<'a> {
    Kernel(&'a dyn GfKernel),
    Isal(IsalKernel),
    Galois8,
}

impl Gf<'_> {
    /// `outputs = coeffs · inputs`; ISA-L expands its tables on every call, as a
    /// caller with a new matrix per segment (decode, recode) must.
    fn apply(self, coeffs: &[u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
        match self {
            Gf::Kernel(k) => k.dot_prod(coeffs, inputs, outputs),
            Gf::Isal(isal) => {
                let tables = isal.tables(inputs.len(), outputs.len(), coeffs);
                isal.encode_with_tables(&tables, inputs, outputs);
            }
            Gf::Galois8 => {
                let k = inputs.len();
                for (r, out) in outputs.iter_mut().enumerate() {
                    let row = &coeffs[r * k..(r + 1) * k];
                    reed_solomon_erasure::galois_8::mul_slice(row[0], inputs[0], out);
                    for j in 1..k {
                        reed_solomon_erasure::galois_8::mul_slice_xor(row[j], inputs[j], out);
                    }
                }
            }
        }
    }
}

fn coding_rows(
    b: &mut Bench<'_>,
    params: CodingParams,
    layout: &SegmentLayout,
    plain: &[u8],
) -> Result<(), BenchError> {
    let (k, n) = (usize::from(params.k()), usize::from(params.n()));
    let kn = format!("{k}-of-{n}");
    let code = Some((params.k(), params.n()));
    let bytes = layout.object_len();
    let rounds = b.args.rounds;
    let rng = SeededRandom::new(u64::from(params.k()) << 8 | u64::from(params.n()));
    let matrix = Arc::new(CodingMatrix::generate(params.k(), params.n(), &rng)?);
    let key = DataKey::from_bytes([0x24; 32]);
    let version = VersionId([9; 16]);
    let cipher = SegmentCipher::new(b.offload.aead.as_ref(), &key, version)?;
    let sources = sealed_sources(&params, layout, plain, &cipher)?;
    let sym = |s: &AlignedBuf| s.len() / k;
    let gf = b.offload.gf.clone();
    let ours = Gf::Kernel(gf.as_ref());
    let ours_gf = format!("{} kernel", gf.name());
    let max_sym = sources.iter().map(sym).max().unwrap_or(0);
    let mut ring: Vec<AlignedBuf> = (0..IN_FLIGHT).map(|_| AlignedBuf::zeroed(n * max_sym)).collect();

    // Reference outputs, and every implementation checked against them once.
    let coded: Vec<AlignedBuf> = sources
        .iter()
        .map(|s| {
            let mut o = AlignedBuf::zeroed(n * sym(s));
            ours.apply(matrix.coefficients(), &rows_of(s, k), &mut rows_of_mut(&mut o, n));
            o
        })
        .collect();
    let mut baselines: Vec<(Gf<'_>, &str)> = Vec::new();
    if let Some(isal) = b.isal {
        baselines.push((Gf::Isal(isal), "ISA-L"));
    }
    baselines.push((Gf::Galois8, "reed-solomon-erasure galois_8"));
    for &(g, name) in &baselines {
        for (s, c) in sources.iter().zip(&coded) {
            let mut o = AlignedBuf::zeroed(c.len());
            g.apply(matrix.coefficients(), &rows_of(s, k), &mut rows_of_mut(&mut o, n));
            if o != *c {
                return Err(BenchError::Mismatch(format!("{kn}: {name}'s encoding differs from ours")));
            }
        }
        b.checks.push(format!("{kn}: {name} encodes byte for byte as we do"));
    }

    // encode. ISA-L's tables are expanded once per pass (its best case). "cold": the
    // sources come from memory; "warm": each segment was just read, as it is when
    // the pipeline codes a segment right after sealing it.
    for warm in [false, true] {
        for &(g, name) in baselines.iter().filter(|(g, _)| !warm || matches!(g, Gf::Isal(_))) {
            let isal_tables = b.isal.map(|i| i.tables(k, n, matrix.coefficients()));
            let t = compare(rounds, |side| {
                per_segment(warm, &sources, |i, s| {
                    let o = &mut ring[i % IN_FLIGHT];
                    o.set_len_stale(n * sym(s));
                    let (ins, mut outs) = (rows_of(s, k), rows_of_mut(o, n));
                    match (side, g, &isal_tables) {
                        (Side::Ours, ..) => encode(gf.as_ref(), &matrix, &ins, &mut outs),
                        (Side::Base, Gf::Isal(isal), Some(t)) => isal.encode_with_tables(t, &ins, &mut outs),
                        (Side::Base, g, _) => g.apply(matrix.coefficients(), &ins, &mut outs),
                    }
                })
            });
            b.row(if warm { "encode warm" } else { "encode" }, code, ours_gf.clone(), name, bytes, t);
        }
    }
    if params.k() == 4 && gf.name() != "portable" {
        let portable = offload::gf_kernel("portable", &probe())?;
        let t = compare(rounds.min(3), |side| {
            let g = if side == Side::Ours { Gf::Kernel(portable.as_ref()) } else { ours };
            thread_cpu(|| {
                for (i, s) in sources.iter().enumerate() {
                    let o = &mut ring[i % IN_FLIGHT];
                    o.set_len_stale(n * sym(s));
                    g.apply(matrix.coefficients(), &rows_of(s, k), &mut rows_of_mut(o, n));
                }
            })
            .1
        });
        b.row("encode", code, "portable kernel".into(), &ours_gf, bytes, t);
    }

    // decode from the last k fragments; both sides invert per segment.
    let pick: Vec<usize> = (n - k..n).collect();
    let sub: Vec<u8> = pick.iter().flat_map(|&i| matrix.row(i).iter().copied()).collect();
    let isal_opt = b.isal;
    let decode_one = |side: Side, c: &AlignedBuf, d: &mut AlignedBuf| -> bool {
        let rows = rows_of(c, n);
        let ins: Vec<&[u8]> = pick.iter().map(|&i| rows[i]).collect();
        d.set_len_stale(k * (c.len() / n));
        match (side, isal_opt) {
            (Side::Base, Some(isal)) => match isal.invert(&sub, k) {
                Some(inverse) => Gf::Isal(isal).apply(&inverse, &ins, &mut rows_of_mut(d, k)),
                None => return false,
            },
            _ => {
                let coeffs: Vec<&[u8]> = pick.iter().map(|&i| matrix.row(i)).collect();
                match plan_decode(k, &coeffs) {
                    Ok(plan) => gf.dot_prod(&plan.inverse, &ins, &mut rows_of_mut(d, k)),
                    Err(_) => return false,
                }
            }
        }
        true
    };
    for side in [Side::Ours, Side::Base] {
        for (c, s) in coded.iter().zip(&sources) {
            let mut d = AlignedBuf::new();
            if !decode_one(side, c, &mut d) || d != *s {
                return Err(BenchError::Mismatch(format!("{kn}: decoding did not give the sealed segment back")));
            }
        }
    }
    if b.isal.is_some() {
        b.checks.push(format!("{kn}: decoding from the last {k} fragments (ours, ISA-L) gives the sealed segments"));
        for warm in [false, true] {
            let t = compare(rounds, |side| {
                per_segment(warm, &coded, |i, c| {
                    decode_one(side, c, &mut ring[i % IN_FLIGHT]);
                })
            });
            let stage = if warm { "decode warm" } else { "decode" };
            b.row(stage, code, format!("{ours_gf} + Gaussian elimination"), "ISA-L (gf_invert_matrix)", bytes, t);
        }
    }

    // recode: one new fragment from the last k.
    let mix: Vec<u8> = (0..k).map(|j| (j as u8).wrapping_mul(29).wrapping_add(3) | 1).collect();
    if let Some(isal) = b.isal {
        let t = compare(rounds, |side| {
            thread_cpu(|| {
                for (i, c) in coded.iter().enumerate() {
                    let rows = rows_of(c, n);
                    let ins: Vec<&[u8]> = pick.iter().map(|&f| rows[f]).collect();
                    let o = &mut ring[i % IN_FLIGHT];
                    o.set_len_stale(c.len() / n);
                    match side {
                        Side::Ours => {
                            let coeff_rows: Vec<&[u8]> = pick.iter().map(|&f| matrix.row(f)).collect();
                            std::hint::black_box(combine(&mix, &coeff_rows));
                            gf.dot_prod(&mix, &ins, &mut [&mut o[..]]);
                        }
                        Side::Base => Gf::Isal(isal).apply(&mix, &ins, &mut [&mut o[..]]),
                    }
                }
            })
            .1
        });
        b.row("recode", code, ours_gf.clone(), "ISA-L", bytes, t);
    }

    full_codec_rows(b, &params, layout, plain, &matrix, &key, version, &pick)
}

/// The whole codec — records, checksums and all — against ring + ISA-L.
#[allow(clippy::too_many_arguments)]
fn full_codec_rows(
    b: &mut Bench<'_>,
    params: &CodingParams,
    layout: &SegmentLayout,
    plain: &[u8],
    matrix: &Arc<CodingMatrix>,
    key: &DataKey,
    version: VersionId,
    pick: &[usize],
) -> Result<(), BenchError> {
    let (k, n) = (usize::from(params.k()), usize::from(params.n()));
    let kn = format!("{k}-of-{n}");
    let code = Some((params.k(), params.n()));
    let bytes = layout.object_len();
    let count = layout.count() as usize;
    let cap = segment_buffer_capacity(params);
    let base_gf = match b.isal {
        Some(i) => Gf::Isal(i),
        None => Gf::Galois8,
    };
    let base_label = if b.isal.is_some() { "ring + ISA-L" } else { "ring + galois_8" };
    let gf_name = b.offload.gf.name();
    let rk = ring_key(key);
    let refill = |work: &mut Vec<AlignedBuf>| {
        work.resize_with(count, || AlignedBuf::with_capacity(cap));
        for (i, w) in work.iter_mut().enumerate() {
            w.clear();
            let start = layout.offset(i as u64) as usize;
            w.extend_from_slice(&plain[start..start + layout.plain_len(i as u64) as usize]);
        }
    };

    // seal+encode. Buffers are recycled between passes, as the pipeline recycles them.
    let mut work: Vec<AlignedBuf> = Vec::new();
    let mut spare: Vec<AlignedBuf> = (0..IN_FLIGHT).map(|_| AlignedBuf::new()).collect();
    let mut records: Vec<Vec<AlignedBuf>> = Vec::new();
    let mut failed = false;
    // Two baselines: sealing and coding only, as ring and ISA-L would; and the same
    // work as ours, whose records carry a CRC32C each (ISA-L's `crc32_iscsi`).
    let isal_crc = IsalCrc::new().ok();
    let mut baselines = vec![(base_label.to_string(), None)];
    if let (Some(c), Some(_)) = (&isal_crc, b.isal) {
        baselines.push((format!("{base_label} + CRC32C"), Some(c)));
    }
    for (base_label, base_crc) in &baselines {
        let t = compare(b.args.rounds, |side| {
            refill(&mut work);
            match side {
                Side::Ours => {
                    let Ok(mut enc) =
                        ObjectEncoder::new(&b.offload, *params, None, version, key, matrix.clone(), bytes)
                    else {
                        failed = true;
                        return Duration::ZERO;
                    };
                    let mut sealed_back = Vec::with_capacity(count);
                    let (_, t) = thread_cpu(|| {
                        for (i, p) in work.drain(..).enumerate() {
                            let out = std::mem::take(&mut spare[i % IN_FLIGHT]);
                            let seg = enc.prepare(p).and_then(|mut job| {
                                let tag = enc.seal(&mut job)?;
                                enc.finish(job, tag, out)
                            });
                            match seg {
                                Ok(seg) => {
                                    if records.len() < count {
                                        records.push((0..n).map(|f| AlignedBuf::from_slice(seg.record(f))).collect());
                                    }
                                    let (recs, _, sealed) = seg.into_records();
                                    spare[i % IN_FLIGHT] = recs;
                                    sealed_back.push(sealed);
                                }
                                Err(_) => failed = true,
                            }
                        }
                    });
                    work = sealed_back;
                    t
                }
                Side::Base => {
                    let tables = b.isal.map(|i| i.tables(k, n, matrix.coefficients()));
                    thread_cpu(|| {
                        for (i, p) in work.iter_mut().enumerate() {
                            let tag = ring_seal(&rk, &version, layout, i as u64, p);
                            p.extend_from_slice(&tag.0);
                            let sym = symbol_len(params.k(), p.len() as u32);
                            p.resize(k * sym);
                            let o = &mut spare[i % IN_FLIGHT];
                            o.set_len_stale(n * sym);
                            let (ins, mut outs) = (rows_of(p, k), rows_of_mut(o, n));
                            match (base_gf, &tables) {
                                (Gf::Isal(isal), Some(t)) => isal.encode_with_tables(t, &ins, &mut outs),
                                (g, _) => g.apply(matrix.coefficients(), &ins, &mut outs),
                            }
                            if let Some(c) = base_crc {
                                for row in &outs {
                                    std::hint::black_box(c.checksum(row));
                                }
                            }
                        }
                    })
                    .1
                }
            }
        });
        if failed || records.len() != count {
            return Err(BenchError::Mismatch(format!("{kn}: the encoder failed during the benchmark")));
        }
        let label = format!("ObjectEncoder ({} + {gf_name})", b.offload.aead.name());
        b.row("seal+encode", code, label, base_label, bytes, t);
    }

    // open+decode from the last k fragments' records.
    let mut dec = ObjectDecoder::new(&b.offload, *params, version, key, bytes)?;
    let mut opened: Vec<AlignedBuf> = (0..IN_FLIGHT).map(|_| AlignedBuf::new()).collect();
    let mut ok = true;
    // First, untimed: every byte must come back.
    let mut round_trip = Vec::with_capacity(plain.len());
    for (i, recs) in records.iter().enumerate() {
        let given: Vec<(u8, &[u8])> = pick.iter().map(|&f| (f as u8, &recs[f][..])).collect();
        match dec.decode_segment(i as u64, &given, AlignedBuf::new()) {
            Ok(seg) => round_trip.extend_from_slice(&seg.data),
            Err(_) => ok = false,
        }
    }
    if !ok || round_trip != plain {
        return Err(BenchError::Mismatch(format!("{kn}: open+decode did not return the object")));
    }
    for (base_label, base_crc) in &baselines {
        let t = compare(b.args.rounds, |side| match side {
            Side::Ours => {
                thread_cpu(|| {
                    for (i, recs) in records.iter().enumerate() {
                        let given: Vec<(u8, &[u8])> = pick.iter().map(|&f| (f as u8, &recs[f][..])).collect();
                        let slot = &mut opened[i % IN_FLIGHT];
                        match dec.decode_segment(i as u64, &given, std::mem::take(slot)) {
                            Ok(seg) => *slot = seg.data,
                            Err(_) => ok = false,
                        }
                    }
                })
                .1
            }
            Side::Base => {
                let sub: Vec<u8> = pick.iter().flat_map(|&f| matrix.row(f).iter().copied()).collect();
                thread_cpu(|| {
                    for (i, recs) in records.iter().enumerate() {
                        // The same coded symbols, read straight out of the records.
                        let sealed_len = layout.plain_len(i as u64) as usize + TAG_LEN;
                        let sym = symbol_len(params.k(), sealed_len as u32);
                        let start = 8 + k;
                        if let Some(c) = base_crc {
                            // Each record checked before decoding, as ours checks it.
                            for &f in pick {
                                let body = recs[f].len() - 4;
                                let sum = record_checksum(*c, &version, i as u64, &recs[f][..body]);
                                ok &= recs[f][body..] == sum.to_le_bytes();
                            }
                        }
                        let ins: Vec<&[u8]> = pick.iter().map(|&f| &recs[f][start..start + sym]).collect();
                        let d = &mut opened[i % IN_FLIGHT];
                        d.set_len_stale(k * sym);
                        let inverse = match base_gf {
                            Gf::Isal(isal) => isal.invert(&sub, k),
                            _ => plan_decode(k, &pick.iter().map(|&f| matrix.row(f)).collect::<Vec<_>>())
                                .ok()
                                .map(|p| p.inverse),
                        };
                        let Some(inverse) = inverse else {
                            ok = false;
                            continue;
                        };
                        base_gf.apply(&inverse, &ins, &mut rows_of_mut(d, k));
                        let body = sealed_len - TAG_LEN;
                        let mut tag = [0u8; TAG_LEN];
                        tag.copy_from_slice(&d[body..sealed_len]);
                        ok &= ring_open(&rk, &version, layout, i as u64, &mut d[..body], &Tag(tag));
                    }
                })
                .1
            }
        });
        if !ok {
            return Err(BenchError::Mismatch(format!("{kn}: open+decode failed during the benchmark")));
        }
        let label = format!("ObjectDecoder ({} + {gf_name})", b.offload.aead.name());
        b.row("open+decode", code, label, base_label, bytes, t);
    }
    b.checks.push(format!("{kn}: ObjectDecoder returned every byte of the object"));
    Ok(())
}

fn crc_rows(b: &mut Bench<'_>) {
    let caps = probe();
    // Ours: every CRC32C engine this machine runs but ISA-L's, which is the baseline.
    let mut engines: Vec<Arc<dyn Crc32c>> = offload::engine_names("crc32c")
        .into_iter()
        .filter(|&name| name != "isal")
        .filter_map(|name| offload::crc32c_engine(name, &caps).ok())
        .collect();
    let (base, base_name): (Arc<dyn Crc32c>, &str) = match IsalCrc::new() {
        Ok(i) => (Arc::new(i), "ISA-L crc32_iscsi"),
        Err(_) => match offload::crc32c_engine("crc-fast", &caps) {
            Ok(c) => (c, "crc-fast"),
            Err(_) => return,
        },
    };
    if base_name == "crc-fast" {
        engines.retain(|e| e.name() != "crc-fast");
    }
    for len in [4096usize, 1 << 20] {
        let total: usize = 64 << 20;
        let data = vec![0x5Au8; len];
        for e in &engines {
            let t = compare(b.args.rounds, |side| {
                let engine: &dyn Crc32c = if side == Side::Ours { e.as_ref() } else { base.as_ref() };
                thread_cpu(|| {
                    let mut acc = 0u32;
                    for _ in 0..total / len {
                        acc ^= engine.checksum(std::hint::black_box(&data));
                    }
                    std::hint::black_box(acc)
                })
                .1
            });
            b.row(&format!("crc32c {}", format_size(len as u64)), None, e.name().into(), base_name, total as u64, t);
        }
    }
}

fn print_table(r: &Report) {
    println!(
        "skyshard bench codec — {} object, {} segments, median of {} rounds, GB/s per core (thread CPU time)",
        format_size(r.object_bytes),
        format_size(r.segment_size),
        r.rounds
    );
    println!(
        "machine: {} ({} CPUs); GLIBC_TUNABLES rep_movsb workaround: {}; ISA-L: {}",
        r.machine.cpu,
        r.machine.cpus,
        if r.machine.glibc_rep_movsb_tunable { "set" } else { "not set" },
        r.isal.as_deref().unwrap_or("not installed"),
    );
    let engines: Vec<String> = r.engines.choices.iter().map(|c| format!("{}={}", c.job, c.chosen)).collect();
    println!("engines: {}", engines.join(", "));
    println!();
    println!(
        "{:<14} {:<9} {:<44} {:>8}  {:<30} {:>8}  {:>6}",
        "stage", "code", "ours", "GB/s", "baseline", "GB/s", "ratio"
    );
    for row in &r.rows {
        println!(
            "{:<14} {:<9} {:<44} {:>8.2}  {:<30} {:>8.2}  {:>5.2}x",
            row.stage,
            row.code.as_deref().unwrap_or("-"),
            row.ours,
            row.ours_gbps,
            row.baseline,
            row.baseline_gbps,
            row.ratio
        );
    }
    println!();
    for c in &r.checks {
        println!("check: {c}");
    }
}
