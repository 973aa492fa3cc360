// The published declarations as a strict consumer compiles them: every optional field a user passes in accepts
// `undefined` (so `password: process.env['WEAVE_PASSWORD']` compiles under exactOptionalPropertyTypes). The
// packed package against a strict consumer project is tested in packed-package.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

const root = new URL('../../../../', import.meta.url).pathname; // dist/test/unit/package → the repository
const entryPoints = ['dist/src/index.d.ts', 'dist/src/testing/index.d.ts'].map((p) => join(root, p));
const INPUT_TYPE_NAME = /(Options|Tuning|Timings|Limits|Conditions)$/;

/**
 * Optional properties reachable from what users pass in (parameters of public functions, constructors and
 * methods, and every exported `…Options`-like type) whose type does not include `undefined`.
 */
function optionalFieldsRejectingUndefined(): string[] {
  const program = ts.createProgram(entryPoints, {
    strict: true,
    exactOptionalPropertyTypes: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: ['node'],
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const ours = (decl: ts.Node): boolean => decl.getSourceFile().fileName.startsWith(join(root, 'dist/src/'));
  const violations = new Set<string>();
  const seen = new Set<ts.Type>();
  // Under exactOptionalPropertyTypes an optional field's type holds a "missing" marker, not the undefined type.
  const acceptsUndefined = (t: ts.Type): boolean =>
    t === checker.getUndefinedType() || (t.isUnion() && t.types.some((m) => m === checker.getUndefinedType()));

  const visitType = (type: ts.Type): void => {
    if (seen.has(type)) return;
    seen.add(type);
    if (type.isUnion() || type.isIntersection()) return type.types.forEach(visitType);
    if (checker.isArrayType(type) || checker.isTupleType(type)) return checker.getTypeArguments(type as ts.TypeReference).forEach(visitType);
    if (!(type.flags & ts.TypeFlags.Object) || type.getCallSignatures().length > 0) return; // callbacks are ours to call
    const symbol = type.aliasSymbol ?? type.getSymbol();
    const decls = symbol?.getDeclarations() ?? [];
    if (symbol && symbol.flags & ts.SymbolFlags.Class) return; // class instances are visited as roots
    const mapped = ((type as ts.ObjectType).objectFlags & ts.ObjectFlags.Mapped) !== 0; // Partial<…>, Omit<…> of our types
    if (!mapped && decls.length > 0 && !decls.some(ours)) return; // lib and node types
    const owner = checker.typeToString(type, undefined, ts.TypeFormatFlags.NoTruncation);
    for (const prop of checker.getPropertiesOfType(type)) {
      if (prop.flags & ts.SymbolFlags.Method) continue;
      const propType = checker.getTypeOfSymbol(prop);
      if (prop.flags & ts.SymbolFlags.Optional && !acceptsUndefined(propType)) violations.add(`${owner}.${prop.name}`);
      visitType(propType);
    }
  };
  const visitSignatures = (signatures: readonly ts.Signature[]): void => {
    for (const s of signatures) for (const p of s.getParameters()) visitType(checker.getTypeOfSymbol(p));
  };
  const visitMembers = (type: ts.Type): void => {
    for (const member of checker.getPropertiesOfType(type)) {
      if (!(member.flags & ts.SymbolFlags.Method)) continue; // function-typed properties are events and callbacks: we pass those
      const decl = member.valueDeclaration;
      if (decl && ts.getCombinedModifierFlags(decl as ts.Declaration) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) continue;
      visitSignatures(checker.getTypeOfSymbol(member).getCallSignatures());
    }
  };

  for (const file of entryPoints) {
    const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(file) as ts.SourceFile);
    for (const exported of checker.getExportsOfModule(moduleSymbol as ts.Symbol)) {
      const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      if (symbol.flags & ts.SymbolFlags.Function) visitSignatures(checker.getTypeOfSymbol(symbol).getCallSignatures());
      if (symbol.flags & ts.SymbolFlags.Class) {
        visitSignatures(checker.getTypeOfSymbol(symbol).getConstructSignatures());
        visitMembers(checker.getDeclaredTypeOfSymbol(symbol));
      }
      if (symbol.flags & ts.SymbolFlags.Interface) visitMembers(checker.getDeclaredTypeOfSymbol(symbol));
      if (symbol.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.TypeAlias) && INPUT_TYPE_NAME.test(symbol.name)) {
        visitType(checker.getDeclaredTypeOfSymbol(symbol));
      }
    }
  }
  return [...violations].sort();
}

test('every optional field of what users pass in accepts undefined (exactOptionalPropertyTypes)', () => {
  assert.ok(existsSync(entryPoints[0] as string), 'build first: dist/src/index.d.ts is missing');
  const violations = optionalFieldsRejectingUndefined();
  assert.equal(violations, [], `declare these as \`field?: T | undefined\` and treat undefined as absent:\n  ${violations.join('\n  ')}`);
});

test.run();
