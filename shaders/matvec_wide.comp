#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// Matrix-vector products (decode) for CPU devices, where a workgroup is a loop over SIMD
// vectors of threads and what costs is instructions, not memory: lavapipe's tuning. A
// workgroup of one subgroup computes as many rows as it has threads, ROWS at a time; its
// threads split those rows' K into chunks (quant.glsl), KCHUNKS each, whose x they load once,
// before the rows, and hold in registers; raw-dot formats deal them in runs of RUN consecutive
// blocks, whose texels are read together. The loops over a row's chunks are unrolled,
// so that x and the decoded weights need no indexed arrays. Weights and x are read as 16-byte
// texels (WIDE, matmul_common.glsl): consecutive threads read consecutive chunks, so a row
// streams through memory in order. A row's partial sums meet in a subgroupAdd; thread r keeps
// row r of its block and stores it, so the epilogue (bias, activation, residual) runs once per
// block of rows.
// A rope may follow (pc.rope_rows, abi_matmul.h): a rotated pair is rows 2i and 2i + 1, both
// in the thread's block, whose every sum each thread sees after the subgroupAdd.
// K must be at most KCHUNKS x local size chunks (the lowering checks); COLS is 1 (the grid's z
// runs over the columns and batches). An rms_norm of x may be fused in (VKI_MM_EPI_NORM): x is
// normalised in registers, once per workgroup, before the rows. Formats with a raw chunk dot
// (WQ_DOT, quant.glsl: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) then scale x in place, so that a weight
// element costs a mask, a conversion and a multiply-add.
#include "vki_abi.h"

layout(local_size_x = 8, local_size_x_id = VKI_SPEC_LOCAL_SIZE_X) in;
#define WIDE 1
#include "matmul_common.glsl"
layout(binding = VKI_MM_BINDING_NORM, rgba32ui) uniform readonly restrict uimageBuffer n_wide;
layout(std430, binding = VKI_MM_BINDING_POS) readonly restrict buffer Pos { int pos[]; };
#include "rope.glsl"

layout(constant_id = VKI_SPEC_MM_KCHUNKS) const uint KCHUNKS = 1;
layout(constant_id = VKI_SPEC_MM_BLOCKS) const uint BLOCKS = 1;
layout(constant_id = VKI_SPEC_MM_RUN) const uint RUN = 1;

// A run of RUN blocks (raw-dot formats; RUN 1 is a single block) is fetched at once, whole
// texels and one realignment (three Q4_1 blocks: 5 texels, where one at a time takes 6). The
// lowering gives longer runs of whole words only, so they start at a word wherever the rows do
// (VKI_MM_ALIGN_W_ROWS).
#if WQ_DOT
const uint RUN_WORDS = (RUN * WQ_BLOCK_BYTES + 3u) / 4u;
const uint RUN_WORDS_MAX = (VKI_MM_RUN_MAX * WQ_BLOCK_BYTES + 3u) / 4u;
#endif

void main()
{
    const uint tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    const uint rows0 = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * nt * BLOCKS;
    if (rows0 >= pc.M) return; // padding of the 2-D grid: whole workgroups
    const uint col = gl_WorkGroupID.z % pc.N, b = gl_WorkGroupID.z / pc.N;
    uint wbase, xbase;
    batch_bases(b, wbase, xbase);
    const uint xcol = xbase + col * pc.x_nb1, chunks = pc.K / WQ_CHUNK;

    // A pass computes ROWS rows: their ROWS x chunks (row, chunk) items, row by row, are dealt
    // to the threads in turn, KCHUNKS to each (ROWS is chosen so that few are left over: K of
    // 576 has 18 chunks, 4 rows 72 items, 9 per thread). A thread's items are the same in
    // every pass: their chunks' x is loaded once. Items past the end repeat the last one (loads
    // stay in bounds without branches) and count nothing.
    // With runs, an item is RUN consecutive chunks of a row (RUN divides the row's chunks, and
    // the format has a raw dot: the lowering checks): slot c holds chunk c % RUN of the
    // thread's item c / RUN (Q4_1 at K = 576: 4 rows of 6 runs of 3, 3 runs per thread).
    const uint per_row = max(chunks / RUN, 1u), items = ROWS * per_row;
    uint slot_row[KCHUNKS], slot_ch[KCHUNKS];
    bool slot_on[KCHUNKS];
    float xv[KCHUNKS][WQ_CHUNK];
    [[unroll]] for (uint c = 0u; c < KCHUNKS; c++) {
        uint it = tid + nt * (c / RUN), item = min(it, max(items, 1u) - 1u);
        slot_on[c] = it < items;
        slot_row[c] = item / per_row;
        slot_ch[c] = min((item % per_row) * RUN + c % RUN, max(chunks, 1u) - 1u);
        x_chunk(xcol, slot_ch[c], xv[c]);
    }

    if ((pc.epi & VKI_MM_EPI_NORM) != 0u) {
        // x * w / sqrt(mean(x^2) + eps), an rms_norm fused in: every chunk of x is in the slots
        // of the pass's row 0 once.
        float ss = 0.0;
        [[unroll]] for (uint c = 0u; c < KCHUNKS; c++)
            ss += slot_on[c] && slot_row[c] == 0u ? dot_chunk(xv[c], xv[c]) : 0.0;
        float scale = inversesqrt(subgroupAdd(ss) / float(pc.K) + pc.eps);
        [[unroll]] for (uint c = 0u; c < KCHUNKS; c++)
            [[unroll]] for (uint run = 0u; run < WQ_RUNS; run++) { // the chunk's x elements
                uint e = (pc.n_off + WQ_RUN(slot_ch[c], run)) >> 2, o = run * WQ_RUN_LENGTH;
                [[unroll]] for (uint q = 0u; q < WQ_RUN_LENGTH / 4u; q++) {
                    vec4 g = scale * uintBitsToFloat(imageLoad(n_wide, int(e + q)));
                    for (uint i = 0u; i < 4u; i++) xv[c][o + 4u * q + i] *= g[i];
                }
            }
    }

#if WQ_DOT
    // The raw chunk dots of quant.glsl: x scaled in place once, its unscaled sums kept. A run
    // of whole words needs no realigning by halves; one of whole texels from rows of whole
    // texels (Q4_1 in runs of 4 at K = 1536) none at all, and takes 5 texels where 80 bytes at
    // any word take 6. Folded when the pipeline is specialised (statements, since glslang
    // emitted a conditional expression of specialisation constants undefined).
    uint run_align = 2u;
    if ((ALIGN & VKI_MM_ALIGN_W_ROWS) != 0u && (RUN * WQ_BLOCK_BYTES) % 4u == 0u) run_align = 4u;
    if ((ALIGN & VKI_MM_ALIGN_W_TEXELS) != 0u && (RUN * WQ_BLOCK_BYTES) % 16u == 0u) run_align = 16u;
    float xsum[KCHUNKS];
    [[unroll]] for (uint c = 0u; c < KCHUNKS; c++) {
        vec4 t = vec4(0.0);
        for (uint i = 0u; i < WQ_CHUNK; i += 4u)
            t += vec4(xv[c][i], xv[c][i + 1u], xv[c][i + 2u], xv[c][i + 3u]);
        xsum[c] = (t.x + t.y) + (t.z + t.w);
        for (uint i = 0u; i < WQ_CHUNK; i++) xv[c][i] *= wq_x_scale(i);
    }
#endif

    for (uint blk = 0u; blk < BLOCKS; blk++) {
        const uint row0 = rows0 + blk * nt;
        if (row0 >= pc.M) break;
        float mine = 0.0, mine_up = 0.0, pair = 0.0; // pair: row tid ^ 1's, for the rope
        // A fused glu: the up rows follow the gate's (part 1), y = act(gate) * up.
        for (uint part = 0u; part < (glu_act() != 0u ? 2u : 1u); part++)
        for (uint r = 0u; r < nt; r += ROWS) {
            float s[ROWS];
            [[unroll]] for (uint j = 0u; j < ROWS; j++) s[j] = 0.0;
            [[unroll]] for (uint c = 0u; c < KCHUNKS; c += RUN) {
                const uint wrow = wbase + (min(row0 + r + slot_row[c], pc.M - 1u) + part * pc.M) * pc.w_nb1;
#if WQ_DOT
                float d = 0.0;
                uint rw[RUN_WORDS_MAX];
                fetch_words_wide_max(wrow + WQ_BLOCK_BYTES * slot_ch[c], RUN_WORDS, run_align, rw,
                                     RUN_WORDS_MAX);
                [[unroll]] for (uint i = 0u; i < RUN; i++) {
                    float di;
                    W_DOT_AT(rw, WQ_BLOCK_BYTES * i, xv[c + i], xsum[c + i], di);
                    d += di;
                }
#else
                float wv[WQ_CHUNK];
                w_chunk(wrow, slot_ch[c], wv);
                float d = dot_chunk(wv, xv[c]);
#endif
                d = slot_on[c] ? d : 0.0;
                [[unroll]] for (uint j = 0u; j < ROWS; j++) s[j] += slot_row[c] == j ? d : 0.0;
            }
#if !WQ_QUANT
            [[unroll]] for (uint j = 0u; j < ROWS; j++) {
                const uint wr = wbase + (min(row0 + r + j, pc.M - 1u) + part * pc.M) * pc.w_nb1;
                for (uint k = chunks * WQ_CHUNK + tid; k < pc.K; k += nt) s[j] += w_elem(wr, k) * x_elem(xcol + k);
            }
#endif
            [[unroll]] for (uint j = 0u; j < ROWS; j++) {
                float t = subgroupAdd(s[j]);
                if (r + j == tid) {
                    if (part == 0u) mine = t;
                    else mine_up = t;
                }
                if (r + j == (tid ^ 1u)) pair = t; // no glu with a rope
            }
        }
        if (glu_act() != 0u) mine = vki_activate(glu_act(), mine) * mine_up;
        const uint row = row0 + tid, c = row % max(pc.rope_hd, 1u);
        if (row < pc.rope_rows && c < pc.n_rot) {
            vec2 cs = rope_cos_sin(pos[pc.p_off + col], c >> 1, pc.freq_scale, pc.log2_step);
            mine = (c & 1u) == 0u ? mine * cs.x - pair * cs.y : pair * cs.y + mine * cs.x;
        }
        if (row < pc.M) store_y(row, col, b, mine);
    }
}
