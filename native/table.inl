// This instruction set's entry in the kernel table (engine.h), in the table's field order;
// included last by isa_*.cc.
extern const Kernels kernels;
const Kernels kernels = {
    RED_ISA_NAME,
    matmul,
    linearForward,
    linearBackward,
    embeddingForward,
    embeddingBackward,
    rmsnormForward,
    rmsnormBackward,
    ropeForward,
    ropeBackward,
    attentionForward,
    attentionBackward,
    attentionDecode,
    attentionDecodeBf16,
    swigluForward,
    swigluBackward,
    add,
    lossHeadForward,
    lossHeadBackward,
    adamw,
    sumSquares,
    scale,
    peakFp32,
    chooseToken,
};
