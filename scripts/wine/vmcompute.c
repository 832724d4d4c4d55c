/* Stand-in for vmcompute.dll's HNSCall (HNS v1), which wine lacks: it records every call and answers as HNS
 * would for one L2Bridge network, so wkjoin's own HNSCall path (loading, string passing, freeing, reading the
 * answers) runs under wine. Not HNS: it creates nothing. Active only when WKJOIN_HNS_STANDIN_LOG names the file
 * the calls are appended to ("METHOD PATH REQUEST" per line); otherwise it fails every call (E_NOTIMPL), as if
 * HNS were not there. Built by scripts/wine-env during the test run; never shipped. */
#include <windows.h>
#include <objbase.h>
#include <stdio.h>
#include <wchar.h>

static int endpoint_created;

static WCHAR *answer(const WCHAR *text)
{
    size_t n = (wcslen(text) + 1) * sizeof(WCHAR);
    WCHAR *p = CoTaskMemAlloc(n);
    if (p)
        memcpy(p, text, n);
    return p;
}

HRESULT WINAPI HNSCall(LPCWSTR method, LPCWSTR path, LPCWSTR request, LPWSTR *response)
{
    WCHAR log[MAX_PATH], network[128];
    FILE *f;
    *response = NULL;
    if (!GetEnvironmentVariableW(L"WKJOIN_HNS_STANDIN_LOG", log, MAX_PATH))
        return E_NOTIMPL;
    if (!GetEnvironmentVariableW(L"WKJOIN_HNS_STANDIN_NETWORK", network, 128))
        wcscpy(network, L"cbr0");
    f = _wfopen(log, L"a, ccs=UTF-8");
    if (f) {
        fwprintf(f, L"%ls %ls %ls\n", method, path, request ? request : L"");
        fclose(f);
    }
    if (!wcscmp(method, L"GET") && !wcscmp(path, L"/networks/")) {
        WCHAR text[512];
        swprintf(text, 512, L"{\"Success\":true,\"Output\":[{\"ID\":\"11111111-0000-0000-0000-000000000001\","
                            L"\"Name\":\"nat\"},{\"ID\":\"22222222-0000-0000-0000-000000000002\",\"Name\":\"%ls\"}]}",
                 network);
        *response = answer(text);
    } else if (!wcscmp(method, L"GET") && !wcscmp(path, L"/endpoints/")) {
        *response = answer(endpoint_created
            ? L"{\"Success\":true,\"Output\":[{\"ID\":\"33333333-0000-0000-0000-000000000003\","
              L"\"Name\":\"cbr0_ep\",\"IPAddress\":\"10.244.1.2\"}]}"
            : L"{\"Success\":true,\"Output\":[]}");
    } else if (!wcscmp(method, L"POST") && !wcscmp(path, L"/endpoints/")) {
        endpoint_created = 1;
        *response = answer(L"{\"Success\":true,\"Output\":{\"ID\":\"33333333-0000-0000-0000-000000000003\"}}");
    } else if (!wcscmp(method, L"POST") && wcsstr(path, L"/attach")) {
        *response = answer(endpoint_created ? L"{\"Success\":true}"
            : L"{\"Success\":false,\"Error\":\"Element not found.\"}");
    } else {
        *response = answer(L"{\"Success\":true}");
    }
    return S_OK;
}
