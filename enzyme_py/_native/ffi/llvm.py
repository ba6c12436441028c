"""The declaration table of the LLVM-C functions enzyme_py uses (LLVM 15 and later).

:class:`~enzyme_py._native.ffi.Binding` attaches :data:`FUNCTIONS` to a loaded libLLVM.
Opaque handles are ``c_void_p``; strings passed in are ``bytes``; strings LLVM allocates
are returned as ``c_void_p`` so that the caller can free them with the matching
``LLVMDispose*`` function.  Declarations only: no logic, no state.
"""

from __future__ import annotations

import ctypes
from ctypes import (
    CFUNCTYPE,
    POINTER,
    c_char_p,
    c_int,
    c_size_t,
    c_uint,
    c_uint64,
    c_void_p,
)

__all__ = [
    "DIAGNOSTIC_HANDLER",
    "FUNCTIONS",
    "ORC_DEFINITION_GENERATOR",
    "ORC_ERROR_REPORTER",
    "CLookupSetElement",
    "CSymbolMapPair",
    "DiagnosticSeverity",
    "JITEvaluatedSymbol",
    "JITSymbolFlags",
    "Linkage",
    "Opcode",
    "TypeKind",
    "ValueKind",
    "host_target_initializers",
]

P = c_void_p
PP = POINTER(c_void_p)
Bool = c_int

#: ``void (*)(LLVMDiagnosticInfoRef, void *)``
DIAGNOSTIC_HANDLER = CFUNCTYPE(None, c_void_p, c_void_p)

#: ``void (*)(void *ctx, LLVMErrorRef)``: ORC's session error reporter
ORC_ERROR_REPORTER = CFUNCTYPE(None, c_void_p, c_void_p)

#: ``LLVMErrorRef (*)(LLVMOrcDefinitionGeneratorRef, void *ctx, LLVMOrcLookupStateRef *,
#: LLVMOrcLookupKind, LLVMOrcJITDylibRef, LLVMOrcJITDylibLookupFlags, LLVMOrcCLookupSet,
#: size_t)``: a custom definition generator's callback
ORC_DEFINITION_GENERATOR = CFUNCTYPE(c_void_p, c_void_p, c_void_p, c_void_p, c_int, c_void_p, c_int, c_void_p, c_size_t)


class TypeKind:
    """``LLVMTypeKind`` values."""

    VOID = 0
    HALF = 1
    FLOAT = 2
    DOUBLE = 3
    X86_FP80 = 4
    FP128 = 5
    PPC_FP128 = 6
    LABEL = 7
    INTEGER = 8
    FUNCTION = 9
    STRUCT = 10
    ARRAY = 11
    POINTER = 12
    VECTOR = 13


class ValueKind:
    """``LLVMValueKind`` values used when walking operands."""

    FUNCTION = 5
    GLOBAL_VARIABLE = 8
    CONSTANT_EXPR = 10
    INLINE_ASM = 23
    INSTRUCTION = 24


class Linkage:
    """``LLVMLinkage`` values."""

    EXTERNAL = 0
    APPENDING = 7
    INTERNAL = 8
    PRIVATE = 9


class Opcode:
    """``LLVMOpcode`` values used when walking instructions."""

    BR = 2
    INVOKE = 5
    ALLOCA = 26
    LOAD = 27
    STORE = 28
    GEP = 29
    PTR_TO_INT = 39
    BITCAST = 41
    CALL = 45
    SELECT = 46
    ADDRSPACE_CAST = 60


class DiagnosticSeverity:
    """``LLVMDiagnosticSeverity`` values."""

    ERROR = 0
    WARNING = 1
    REMARK = 2
    NOTE = 3


FUNCTIONS: dict[str, tuple[object, tuple[object, ...]]] = {
    # messages, errors
    "LLVMDisposeMessage": (None, (P,)),
    "LLVMGetErrorMessage": (P, (P,)),
    "LLVMDisposeErrorMessage": (None, (P,)),
    "LLVMConsumeError": (None, (P,)),
    # contexts, diagnostics
    "LLVMContextCreate": (P, ()),
    "LLVMContextDispose": (None, (P,)),
    "LLVMContextSetDiagnosticHandler": (None, (P, DIAGNOSTIC_HANDLER, P)),
    "LLVMContextSetOpaquePointers": (None, (P, Bool)),
    "LLVMGetDiagInfoDescription": (P, (P,)),
    "LLVMGetDiagInfoSeverity": (c_int, (P,)),
    "LLVMGetMDKindIDInContext": (c_uint, (P, c_char_p, c_uint)),
    # memory buffers
    "LLVMCreateMemoryBufferWithMemoryRangeCopy": (P, (c_char_p, c_size_t, c_char_p)),
    "LLVMDisposeMemoryBuffer": (None, (P,)),
    "LLVMGetBufferStart": (P, (P,)),
    "LLVMGetBufferSize": (c_size_t, (P,)),
    # parsing, writing
    "LLVMParseIRInContext": (Bool, (P, P, PP, PP)),
    "LLVMParseBitcodeInContext2": (Bool, (P, P, PP)),
    "LLVMWriteBitcodeToMemoryBuffer": (P, (P,)),
    # modules
    "LLVMDisposeModule": (None, (P,)),
    "LLVMPrintModuleToString": (P, (P,)),
    "LLVMSetTarget": (None, (P, c_char_p)),
    "LLVMSetModuleDataLayout": (None, (P, P)),
    "LLVMVerifyModule": (Bool, (P, c_int, PP)),
    "LLVMGetNamedFunction": (P, (P, c_char_p)),
    "LLVMGetFirstFunction": (P, (P,)),
    "LLVMGetNextFunction": (P, (P,)),
    "LLVMAddFunction": (P, (P, c_char_p, P)),
    # values
    "LLVMTypeOf": (P, (P,)),
    "LLVMGetValueName2": (P, (P, POINTER(c_size_t))),
    "LLVMSetValueName2": (None, (P, c_char_p, c_size_t)),
    "LLVMPrintValueToString": (P, (P,)),
    "LLVMIsDeclaration": (Bool, (P,)),
    "LLVMSetLinkage": (None, (P, c_int)),
    "LLVMGetLinkage": (c_int, (P,)),
    "LLVMGlobalGetValueType": (P, (P,)),
    "LLVMConstNull": (P, (P,)),
    "LLVMGetParam": (P, (P, c_uint)),
    "LLVMCountParams": (c_uint, (P,)),
    "LLVMIsAFunction": (P, (P,)),
    "LLVMGetEnumAttributeKindForName": (c_uint, (c_char_p, c_size_t)),
    "LLVMGetEnumAttributeAtIndex": (P, (P, c_uint, c_uint)),
    "LLVMGetAlignment": (c_uint, (P,)),
    "LLVMSetAlignment": (None, (P, c_uint)),
    "LLVMGetMetadata": (P, (P, c_uint)),
    "LLVMSetMetadata": (None, (P, c_uint, P)),
    "LLVMGetMDNodeNumOperands": (c_uint, (P,)),
    "LLVMGetMDNodeOperands": (None, (P, PP)),
    "LLVMGetMDString": (P, (P, POINTER(c_uint))),
    "LLVMIsAMDNode": (P, (P,)),
    "LLVMIsAMDString": (P, (P,)),
    # types
    "LLVMGetTypeKind": (c_int, (P,)),
    "LLVMGetIntTypeWidth": (c_uint, (P,)),
    "LLVMGetReturnType": (P, (P,)),
    "LLVMCountParamTypes": (c_uint, (P,)),
    "LLVMIsFunctionVarArg": (Bool, (P,)),
    "LLVMGetParamTypes": (None, (P, PP)),
    "LLVMGetElementType": (P, (P,)),
    "LLVMPointerTypeIsOpaque": (Bool, (P,)),
    "LLVMCountStructElementTypes": (c_uint, (P,)),
    "LLVMStructGetTypeAtIndex": (P, (P, c_uint)),
    "LLVMPrintTypeToString": (P, (P,)),
    "LLVMFunctionType": (P, (P, PP, c_uint, Bool)),
    "LLVMVoidTypeInContext": (P, (P,)),
    "LLVMInt8TypeInContext": (P, (P,)),
    "LLVMInt32TypeInContext": (P, (P,)),
    "LLVMInt64TypeInContext": (P, (P,)),
    "LLVMPointerType": (P, (P, c_uint)),
    # basic blocks, instructions
    "LLVMGetFirstBasicBlock": (P, (P,)),
    "LLVMGetNextBasicBlock": (P, (P,)),
    "LLVMGetFirstInstruction": (P, (P,)),
    "LLVMGetNextInstruction": (P, (P,)),
    "LLVMGetInstructionOpcode": (c_int, (P,)),
    "LLVMAppendBasicBlockInContext": (P, (P, P, c_char_p)),
    # builder
    "LLVMCreateBuilderInContext": (P, (P,)),
    "LLVMDisposeBuilder": (None, (P,)),
    "LLVMPositionBuilderAtEnd": (None, (P, P)),
    "LLVMBuildCall2": (P, (P, P, P, PP, c_uint, c_char_p)),
    "LLVMBuildRet": (P, (P, P)),
    "LLVMBuildRetVoid": (P, (P,)),
    "LLVMBuildExtractValue": (P, (P, P, c_uint, c_char_p)),
    "LLVMBuildStore": (P, (P, P, P)),
    "LLVMBuildBitCast": (P, (P, P, P, c_char_p)),
    "LLVMBuildGEP2": (P, (P, P, P, PP, c_uint, c_char_p)),
    "LLVMConstInt": (P, (P, ctypes.c_ulonglong, Bool)),
    "LLVMConstReal": (P, (P, ctypes.c_double)),
    # targets
    "LLVMGetDefaultTargetTriple": (P, ()),
    "LLVMGetHostCPUName": (P, ()),
    "LLVMGetHostCPUFeatures": (P, ()),
    "LLVMGetTargetFromTriple": (Bool, (c_char_p, PP, PP)),
    "LLVMCreateTargetMachine": (P, (P, c_char_p, c_char_p, c_char_p, c_int, c_int, c_int)),
    "LLVMDisposeTargetMachine": (None, (P,)),
    "LLVMCreateTargetDataLayout": (P, (P,)),
    "LLVMDisposeTargetData": (None, (P,)),
    "LLVMTargetMachineEmitToMemoryBuffer": (Bool, (P, P, c_int, PP, PP)),
    # new pass manager
    "LLVMCreatePassBuilderOptions": (P, ()),
    "LLVMDisposePassBuilderOptions": (None, (P,)),
    "LLVMPassBuilderOptionsSetLoopUnrolling": (None, (P, Bool)),
    "LLVMPassBuilderOptionsSetLoopVectorization": (None, (P, Bool)),
    "LLVMPassBuilderOptionsSetSLPVectorization": (None, (P, Bool)),
    "LLVMRunPasses": (P, (P, c_char_p, P, P)),
    # legacy pass manager (Enzyme's own pass, AddEnzymePass, is added to one)
    "LLVMCreatePassManager": (P, ()),
    "LLVMRunPassManager": (Bool, (P, P)),
    "LLVMDisposePassManager": (None, (P,)),
    # ORC LLJIT
    "LLVMOrcCreateLLJIT": (P, (PP, P)),
    "LLVMOrcDisposeLLJIT": (P, (P,)),
    "LLVMOrcLLJITGetMainJITDylib": (P, (P,)),
    "LLVMOrcLLJITGetGlobalPrefix": (ctypes.c_char, (P,)),
    "LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess": (P, (PP, ctypes.c_char, P, P)),
    "LLVMOrcJITDylibAddGenerator": (None, (P, P)),
    "LLVMOrcJITDylibCreateResourceTracker": (P, (P,)),
    "LLVMOrcResourceTrackerRemove": (P, (P,)),
    "LLVMOrcReleaseResourceTracker": (None, (P,)),
    "LLVMOrcLLJITAddObjectFileWithRT": (P, (P, P, P)),
    "LLVMOrcLLJITLookup": (P, (P, POINTER(c_uint64), c_char_p)),
    "LLVMOrcLLJITMangleAndIntern": (P, (P, c_char_p)),
    "LLVMOrcLLJITGetExecutionSession": (P, (P,)),
    "LLVMOrcExecutionSessionSetErrorReporter": (None, (P, ORC_ERROR_REPORTER, P)),
    "LLVMOrcAbsoluteSymbols": (P, (P, c_size_t)),
    "LLVMOrcJITDylibDefine": (P, (P, P)),
    "LLVMOrcDisposeMaterializationUnit": (None, (P,)),
    "LLVMOrcCreateCustomCAPIDefinitionGenerator": (P, (ORC_DEFINITION_GENERATOR, P, P)),
    "LLVMOrcSymbolStringPoolEntryStr": (c_void_p, (P,)),
    "LLVMCreateStringError": (P, (c_char_p,)),
    "LLVMParseCommandLineOptions": (None, (c_int, POINTER(c_char_p), c_char_p)),
    # vector mode, split mode, hvp, custom rules, tuning
    "LLVMBuildLoad2": (P, (P, P, P, c_char_p)),
    "LLVMGetArrayLength": (c_uint, (P,)),
    "LLVMArrayType": (P, (P, c_uint)),
    "LLVMConstArray": (P, (P, PP, c_uint)),
    "LLVMBuildInsertValue": (P, (P, P, P, c_uint, c_char_p)),
    "LLVMGetUndef": (P, (P,)),
    "LLVMDoubleTypeInContext": (P, (P,)),
    "LLVMCreateStringAttribute": (P, (P, c_char_p, c_uint, c_char_p, c_uint)),
    "LLVMAddAttributeAtIndex": (None, (P, c_uint, P)),
    "LLVMGetStringAttributeAtIndex": (P, (P, c_uint, c_char_p, c_uint)),
    "LLVMGetStringAttributeValue": (P, (P, POINTER(c_uint))),
    "LLVMRemoveStringAttributeAtIndex": (None, (P, c_uint, c_char_p, c_uint)),
    "LLVMGetNamedGlobal": (P, (P, c_char_p)),
    "LLVMLinkModules2": (c_int, (P, P)),
    "LLVMGetGlobalParent": (P, (P,)),
    "LLVMDeleteFunction": (None, (P,)),
    "LLVMStructTypeInContext": (P, (P, PP, c_uint, c_int)),
    "LLVMGlobalSetMetadata": (None, (P, c_uint, P)),
    "LLVMValueAsMetadata": (P, (P,)),
    "LLVMMDNodeInContext2": (P, (P, PP, c_size_t)),
    # globals and instructions (what a module uses, before Enzyme sees it)
    "LLVMGetFirstGlobal": (P, (P,)),
    "LLVMGetNextGlobal": (P, (P,)),
    "LLVMIsGlobalConstant": (Bool, (P,)),
    "LLVMIsThreadLocal": (Bool, (P,)),
    "LLVMGetInitializer": (P, (P,)),
    "LLVMGetNumOperands": (c_int, (P,)),
    "LLVMGetOperand": (P, (P, c_uint)),
    "LLVMGetCalledValue": (P, (P,)),
    "LLVMIsAInlineAsm": (P, (P,)),
    "LLVMIsAConstantExpr": (P, (P,)),
    "LLVMIsAConstant": (P, (P,)),
    "LLVMIsAGlobalVariable": (P, (P,)),
    "LLVMIsACallInst": (P, (P,)),
    "LLVMGetValueKind": (c_int, (P,)),
    "LLVMGetModuleInlineAsm": (P, (P, POINTER(c_size_t))),
    "LLVMGetFirstUse": (P, (P,)),
    "LLVMGetNumArgOperands": (c_uint, (P,)),
    "LLVMGetNextUse": (P, (P,)),
    "LLVMGetUser": (P, (P,)),
    "LLVMIsAInstruction": (P, (P,)),
    "LLVMGetConstOpcode": (c_int, (P,)),
    "LLVMSetInitializer": (None, (P, P)),
    "LLVMSetGlobalConstant": (None, (P, Bool)),
    "LLVMAddGlobal": (P, (P, P, c_char_p)),
    "LLVMDeleteGlobal": (None, (P,)),
    "LLVMGetInstructionParent": (P, (P,)),
    "LLVMGetBasicBlockParent": (P, (P,)),
    "LLVMGetFirstParam": (P, (P,)),
    "LLVMSetUnnamedAddr": (None, (P, Bool)),
    "LLVMGetGlobalContext": (P, ()),
    "LLVMGetModuleContext": (P, (P,)),
    # Enzyme's source-level interface: registrations, annotations, calls left over
    "LLVMIsAConstantArray": (P, (P,)),
    "LLVMIsAConstantStruct": (P, (P,)),
    "LLVMIsAConstantVector": (P, (P,)),
    "LLVMIsAConstantDataArray": (P, (P,)),
    "LLVMIsAConstantPointerNull": (P, (P,)),
    "LLVMIsAConstantInt": (P, (P,)),
    "LLVMIsConstantString": (Bool, (P,)),
    "LLVMGetAsString": (P, (P, POINTER(c_size_t))),
    "LLVMReplaceAllUsesWith": (None, (P, P)),
    "LLVMGetNamedMetadataNumOperands": (c_uint, (P, c_char_p)),
    # entry points whose exit()/abort() come back to Python (enzyme_py._native.traps)
    "LLVMCreateEnumAttribute": (P, (P, c_uint, c_uint64)),
    "LLVMAddCallSiteAttribute": (None, (P, c_uint, P)),
    "LLVMBuildAlloca": (P, (P, P, c_char_p)),
    "LLVMBuildICmp": (P, (P, c_int, P, P, c_char_p)),
    "LLVMBuildCondBr": (P, (P, P, P, P)),
    # static constructors of C++ code
    "LLVMConstIntGetSExtValue": (ctypes.c_longlong, (P,)),
    "LLVMModuleCreateWithNameInContext": (P, (c_char_p, P)),
    "LLVMSetThreadLocal": (None, (P, Bool)),
    # BLAS calls (numba's helpers mapped to CBLAS), vector math
    "LLVMFloatTypeInContext": (P, (P,)),
    "LLVMVectorType": (P, (P, c_uint)),
    "LLVMSetSection": (None, (P, c_char_p)),
    "LLVMConstBitCast": (P, (P, P)),
    "LLVMBuildFCmp": (P, (P, c_int, P, P, c_char_p)),
    "LLVMBuildSelect": (P, (P, P, P, P, c_char_p)),
    "LLVMBuildPhi": (P, (P, P, c_char_p)),
    "LLVMAddIncoming": (None, (P, PP, PP, c_uint)),
    "LLVMBuildTrunc": (P, (P, P, P, c_char_p)),
    "LLVMBuildSExt": (P, (P, P, P, c_char_p)),
    "LLVMBuildBr": (P, (P, P)),
    "LLVMBuildFMul": (P, (P, P, P, c_char_p)),
    "LLVMBuildFDiv": (P, (P, P, P, c_char_p)),
    "LLVMBuildMul": (P, (P, P, P, c_char_p)),
    "LLVMBuildAdd": (P, (P, P, P, c_char_p)),
    "LLVMBuildPointerCast": (P, (P, P, P, c_char_p)),
    "LLVMInstructionEraseFromParent": (None, (P,)),
    "LLVMPositionBuilderBefore": (None, (P, P)),
    "LLVMGetArgOperand": (P, (P, c_uint)),
    "LLVMSetOperand": (None, (P, c_uint, P)),
    "LLVMBuildLShr": (P, (P, P, P, c_char_p)),
    "LLVMBuildZExt": (P, (P, P, P, c_char_p)),
    "LLVMIsAAllocaInst": (P, (P,)),
    "LLVMIsAConstantFP": (P, (P,)),
    "LLVMGetAllocatedType": (P, (P,)),
}


class JITSymbolFlags(ctypes.Structure):
    """``LLVMJITSymbolFlags {uint8_t GenericFlags; uint8_t TargetFlags}``."""

    _fields_ = [("GenericFlags", ctypes.c_uint8), ("TargetFlags", ctypes.c_uint8)]


class JITEvaluatedSymbol(ctypes.Structure):
    """``LLVMJITEvaluatedSymbol {LLVMOrcExecutorAddress Address; LLVMJITSymbolFlags Flags}``."""

    _fields_ = [("Address", c_uint64), ("Flags", JITSymbolFlags)]


class CLookupSetElement(ctypes.Structure):
    """``LLVMOrcCLookupSetElement {LLVMOrcSymbolStringPoolEntryRef Name; LLVMOrcSymbolLookupFlags LookupFlags}``."""

    _fields_ = [("Name", c_void_p), ("LookupFlags", c_int)]


class CSymbolMapPair(ctypes.Structure):
    """``LLVMOrcCSymbolMapPair {LLVMOrcSymbolStringPoolEntryRef Name; LLVMJITEvaluatedSymbol Sym}``."""

    _fields_ = [("Name", c_void_p), ("Sym", JITEvaluatedSymbol)]




def host_target_initializers(machine: str) -> tuple[str, ...]:
    """Names of the ``LLVMInitialize<Target>*`` functions for a ``platform.machine()``.

    Raises :class:`KeyError` for a machine with no known LLVM target.

    >>> host_target_initializers("x86_64")[0]
    'LLVMInitializeX86TargetInfo'
    """
    target = {
        "x86_64": "X86",
        "amd64": "X86",
        "i686": "X86",
        "aarch64": "AArch64",
        "arm64": "AArch64",
        "ppc64le": "PowerPC",
        "riscv64": "RISCV",
    }[machine.lower()]
    return tuple(
        f"LLVMInitialize{target}{part}"
        for part in ("TargetInfo", "Target", "TargetMC", "AsmPrinter", "AsmParser")
    )
