// zod's schema API as the sidecar and the guard use it: zod/mini, the same checks and messages
// without zod's classic layer, which built every schema method up front and cost each process
// 14 MB of idle memory (docs/decisions/0007-idle-memory.md). zod/mini ships no messages until a locale is set.
import { config } from 'zod/mini';
import { en } from 'zod/locales';

config(en());

export * from 'zod/mini';
