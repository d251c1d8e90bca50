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
// K must be at most KCHUNKS x local size chunks (the lowering checks). A workgroup computes
// COLS columns of x (the grid's z runs over the groups of columns and the batches; a last
// group's columns past N repeat column N - 1 and store nothing): each decoded weight chunk is
// dotted with every column's x, all held in registers. A column's arithmetic is the same, op
// for op and in the same order, whatever COLS and N (the dealing of chunks to threads depends
// on K alone), so that a column's result does not depend on the columns beside it. An rms_norm of x may be fused in (VKI_MM_EPI_NORM): x is
// normalised in registers, once per workgroup, before the rows. Formats with a raw chunk dot
// (WQ_DOT, quant.glsl: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) then scale x in place, so that a weight
// element costs a mask, a conversion and a multiply-add.
// IDS=1: matmul_id's decode (abi_moe.h), one column per batch whose weight matrix is the expert
// its id names (batch_bases, matmul_common.glsl; ids at VKI_MM_BINDING_IDS_WIDE): no norm,
// rope, bias or residual. A glu may be fused (gate and up expert products): the up rows are
// then expert id's of the up experts, which follow the e_total gate experts in w. A bad id's
// batch reads the slice's first expert and stores zeros (store_y). Or the weighted combine
// of the experts' outputs may be folded in (VKI_MM_EPI_COMBINE, abi_moe.h): a workgroup then
// runs a token's slots one after another (batch_product), x of each loaded once, and sums them.
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

// Output (row, col) of batch b: stored, or with a folded combine (IDS, VKI_MM_EPI_COMBINE)
// added, weighted, to the sum of the token's earlier slots, which this invocation stored.
void put(uint row, uint col, uint b, float v)
{
#if defined(IDS) && IDS
    if ((pc.epi & VKI_MM_EPI_COMBINE) != 0u) {
        uint j = b % pc.ne2, e = pc.y_off + row + pc.M * (b / pc.ne2);
        float acc = (j == 0u ? 0.0 : y[e]) + bias[pc.b_off + b] * (id_zero ? 0.0 : v);
        if (j + 1u == pc.ne2) {
            acc *= pc.eps;
            if ((pc.epi & VKI_MM_EPI_RES) != 0u) acc += res[pc.r_off + row + pc.M * (b / pc.ne2)];
        }
        y[e] = acc;
        return;
    }
#endif
    store_y(row, col, b, v);
}

// Rows [rows0, rows0 + BLOCKS x local size) of columns [col0, col0 + COLS) of batch b.
void batch_product(uint rows0, uint col0, uint b)
{
    const uint tid = gl_LocalInvocationID.x, nt = gl_WorkGroupSize.x;
    uint wbase, xbase;
    if (!batch_bases(b, wbase, xbase)) return; // matmul_id: another slice's expert (whole workgroup)
    const uint chunks = pc.K / WQ_CHUNK;
    // Where a fused glu's up rows start, from the gate rows: the matrix's rows M on (a dense
    // product's joined weight), or the up experts' (matmul_id's w of 2 e_total experts).
#if defined(IDS) && IDS
    const uint up_rows = pc.e_total * pc.w_nb2;
#else
    const uint up_rows = pc.M * pc.w_nb1;
#endif
    uint xcol[COLS];
    [[unroll]] for (uint cc = 0u; cc < COLS; cc++) xcol[cc] = xbase + min(col0 + cc, pc.N - 1u) * pc.x_nb1;

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
    float xv[COLS][KCHUNKS][WQ_CHUNK];
    [[unroll]] for (uint c = 0u; c < KCHUNKS; c++) {
        uint it = tid + nt * (c / RUN), item = min(it, max(items, 1u) - 1u);
        // K below one chunk (float weights: a tiny expert's down product, K = 16) has no
        // chunk at all: every slot is off and its x, which would lie past the row (and past x's
        // end for the last column), is not loaded; the element tail below does all of K.
        slot_on[c] = it < items && chunks != 0u;
        slot_row[c] = item / per_row;
        slot_ch[c] = min((item % per_row) * RUN + c % RUN, max(chunks, 1u) - 1u);
        [[unroll]] for (uint cc = 0u; cc < COLS; cc++) {
            if (chunks != 0u) x_chunk(xcol[cc], slot_ch[c], xv[cc][c]);
            else for (uint i = 0u; i < WQ_CHUNK; i++) xv[cc][c][i] = 0.0;
        }
    }

    if ((pc.epi & VKI_MM_EPI_NORM) != 0u) {
        // x * w / sqrt(mean(x^2) + eps), an rms_norm fused in: every chunk of x is in the slots
        // of the pass's row 0 once.
        float scale[COLS];
        [[unroll]] for (uint cc = 0u; cc < COLS; cc++) {
            float ss = 0.0;
            [[unroll]] for (uint c = 0u; c < KCHUNKS; c++)
                ss += slot_on[c] && slot_row[c] == 0u ? dot_chunk(xv[cc][c], xv[cc][c]) : 0.0;
            scale[cc] = inversesqrt(subgroupAdd(ss) / float(pc.K) + pc.eps);
        }
        [[unroll]] for (uint c = 0u; c < KCHUNKS; c++)
            [[unroll]] for (uint run = 0u; run < WQ_RUNS; run++) { // the chunk's x elements
                uint e = (pc.n_off + WQ_RUN(slot_ch[c], run)) >> 2, o = run * WQ_RUN_LENGTH;
                [[unroll]] for (uint q = 0u; q < WQ_RUN_LENGTH / 4u; q++) {
                    vec4 nw = uintBitsToFloat(imageLoad(n_wide, int(e + q)));
                    [[unroll]] for (uint cc = 0u; cc < COLS; cc++) {
                        vec4 g = scale[cc] * nw;
                        for (uint i = 0u; i < 4u; i++) xv[cc][c][o + 4u * q + i] *= g[i];
                    }
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
    float xsum[COLS][KCHUNKS];
    [[unroll]] for (uint cc = 0u; cc < COLS; cc++)
        [[unroll]] for (uint c = 0u; c < KCHUNKS; c++) {
            vec4 t = vec4(0.0);
            for (uint i = 0u; i < WQ_CHUNK; i += 4u)
                t += vec4(xv[cc][c][i], xv[cc][c][i + 1u], xv[cc][c][i + 2u], xv[cc][c][i + 3u]);
            xsum[cc][c] = (t.x + t.y) + (t.z + t.w);
            for (uint i = 0u; i < WQ_CHUNK; i++) xv[cc][c][i] *= wq_x_scale(i);
        }
#endif

    for (uint blk = 0u; blk < BLOCKS; blk++) {
        const uint row0 = rows0 + blk * nt;
        if (row0 >= pc.M) break;
        // Per column: row tid's sum, its up row's (glu) and row tid ^ 1's (pair, for the rope).
        float mine[COLS], mine_up[COLS], pair[COLS];
        [[unroll]] for (uint cc = 0u; cc < COLS; cc++) mine[cc] = mine_up[cc] = pair[cc] = 0.0;
        // A fused glu: the up rows follow the gate's (part 1), y = act(gate) * up.
        for (uint part = 0u; part < (glu_act() != 0u ? 2u : 1u); part++)
        for (uint r = 0u; r < nt; r += ROWS) {
            float s[ROWS][COLS];
            [[unroll]] for (uint j = 0u; j < ROWS; j++)
                [[unroll]] for (uint cc = 0u; cc < COLS; cc++) s[j][cc] = 0.0;
            [[unroll]] for (uint c = 0u; c < KCHUNKS; c += RUN) {
                const uint wrow = wbase + part * up_rows + min(row0 + r + slot_row[c], pc.M - 1u) * pc.w_nb1;
                float d[COLS];
#if WQ_DOT
                [[unroll]] for (uint cc = 0u; cc < COLS; cc++) d[cc] = 0.0;
                uint rw[RUN_WORDS_MAX];
                fetch_words_wide_max(wrow + WQ_BLOCK_BYTES * slot_ch[c], RUN_WORDS, run_align, rw,
                                     RUN_WORDS_MAX);
                [[unroll]] for (uint i = 0u; i < RUN; i++) {
                    vec4 wq[8];
                    vec2 dm;
                    W_DECODE_AT(rw, WQ_BLOCK_BYTES * i, wq, dm);
                    [[unroll]] for (uint cc = 0u; cc < COLS; cc++) {
                        float di;
                        W_DOT_DECODED(wq, dm, xv[cc][c + i], xsum[cc][c + i], di);
                        d[cc] += di;
                    }
                }
#else
                float wv[WQ_CHUNK];
                if (chunks != 0u) w_chunk(wrow, slot_ch[c], wv); // none below one chunk (above)
                else for (uint i = 0u; i < WQ_CHUNK; i++) wv[i] = 0.0;
                [[unroll]] for (uint cc = 0u; cc < COLS; cc++) d[cc] = dot_chunk(wv, xv[cc][c]);
#endif
                [[unroll]] for (uint cc = 0u; cc < COLS; cc++) {
                    float dc = slot_on[c] ? d[cc] : 0.0;
                    [[unroll]] for (uint j = 0u; j < ROWS; j++) s[j][cc] += slot_row[c] == j ? dc : 0.0;
                }
            }
#if !WQ_QUANT
            [[unroll]] for (uint j = 0u; j < ROWS; j++) {
                const uint wr = wbase + part * up_rows + min(row0 + r + j, pc.M - 1u) * pc.w_nb1;
                for (uint k = chunks * WQ_CHUNK + tid; k < pc.K; k += nt) {
                    float wk = w_elem(wr, k);
                    [[unroll]] for (uint cc = 0u; cc < COLS; cc++) s[j][cc] += wk * x_elem(xcol[cc] + k);
                }
            }
#endif
            [[unroll]] for (uint j = 0u; j < ROWS; j++)
                [[unroll]] for (uint cc = 0u; cc < COLS; cc++) {
                    float t = subgroupAdd(s[j][cc]);
                    if (r + j == tid) {
                        if (part == 0u) mine[cc] = t;
                        else mine_up[cc] = t;
                    }
                    if (r + j == (tid ^ 1u)) pair[cc] = t; // no glu with a rope
                }
        }
        const uint row = row0 + tid, rc = row % max(pc.rope_hd, 1u);
        [[unroll]] for (uint cc = 0u; cc < COLS; cc++) {
            float v = mine[cc];
            if (glu_act() != 0u) v = vki_activate(glu_act(), v) * mine_up[cc];
            const uint col = col0 + cc;
            if (row < pc.rope_rows && rc < pc.n_rot) {
                vec2 cs = rope_cos_sin(pos[pc.p_off + min(col, pc.N - 1u)], rc >> 1, pc.freq_scale,
                                       pc.log2_step);
                v = (rc & 1u) == 0u ? v * cs.x - pair[cc] * cs.y : pair[cc] * cs.y + v * cs.x;
            }
            if (row < pc.M && col < pc.N) put(row, col, b, v);
        }
    }
}

void main()
{
    const uint nt = gl_WorkGroupSize.x;
    const uint rows0 = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * nt * BLOCKS;
    if (rows0 >= pc.M) return; // padding of the 2-D grid: whole workgroups
#if defined(IDS) && IDS
    if ((pc.epi & VKI_MM_EPI_COMBINE) != 0u) {
        // A token's slots in order, each summed into the rows this workgroup owns.
        for (uint j = 0u; j < pc.ne2; j++) batch_product(rows0, 0u, j + pc.ne2 * gl_WorkGroupID.z);
        return;
    }
#endif
    const uint groups = (pc.N + COLS - 1u) / COLS;
    batch_product(rows0, (gl_WorkGroupID.z % groups) * COLS, gl_WorkGroupID.z / groups);
}
