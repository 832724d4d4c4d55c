/* Stand-in for bcryptprimitives.dll, which Debian 12's wine 8 lacks.
 * Rust >= 1.78's std imports ProcessPrng from it, so without this every Rust .exe fails to start under wine.
 * Built by scripts/wine-env during the test run; never shipped. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length); /* RtlGenRandom, advapi32 */

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
