// fuzz_bodies: the notification bodies callpark sends (module/callpark/wire/bodies.*): RFC 4235 dialog-info,
// park-info (docs/park-info.md), BroadWorks call-park info, message/sipfrag (RFC 3515 §2.4.5).
// Input: a FuzzedDataProvider stream of hostile identities (display names and URIs with quotes, <, &,
// control characters, invalid UTF-8) and ids, tags, versions and times.
// Invariant: every XML body is well-formed XML 1.0 (libxml2 parses it, namespaces included), whatever the
// text that went in; a sipfrag is exactly one status line.
#include "fuzz_common.hh"

#include <wire/bodies.hh>

#include <fuzzer/FuzzedDataProvider.h>
#include <libxml/parser.h>

#include <string>

using namespace parkway::callpark;
using parkway::fuzz::fail;

namespace {

std::string text(FuzzedDataProvider &p) {
    return p.ConsumeRandomLengthString(256);
}

Identity identity(FuzzedDataProvider &p) {
    Identity id;
    id.display = text(p);
    id.uri = text(p);
    return id;
}

void checkXml(const std::string &xml, const char *what) {
    xmlDocPtr doc = xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "body.xml", nullptr,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError *e = xmlGetLastError();
        fail((std::string(what) + " is not well-formed XML: " + (e && e->message ? e->message : "?")).c_str(), xml);
    }
    xmlFreeDoc(doc);
}

DialogInfoDialog dialog(FuzzedDataProvider &p) {
    DialogInfoDialog d;
    d.id = text(p);
    d.callId = text(p);
    d.localTag = text(p);
    d.remoteTag = text(p);
    d.direction = p.PickValueInArray({"", "initiator", "recipient"});
    d.state = p.PickValueInArray({DialogState::Trying, DialogState::Proceeding, DialogState::Early,
                                  DialogState::Confirmed, DialogState::Terminated});
    d.stateEvent = p.ConsumeBool() ? text(p) : std::string();
    d.remote = identity(p);
    d.remoteTarget = text(p);
    d.local = identity(p);
    d.localTarget = text(p);
    d.broadworksCallpark = p.ConsumeBool();
    return d;
}

ParkInfoEntry parkInfo(FuzzedDataProvider &p) {
    ParkInfoEntry e;
    e.id = text(p);
    e.state = p.PickValueInArray(
        {ParkInfoState::Parked, ParkInfoState::Retrieved, ParkInfoState::Recalled, ParkInfoState::Abandoned});
    e.parkedOn = text(p);
    e.parker = identity(p);
    e.parkedParty = identity(p);
    e.retrieve = text(p);
    e.group = text(p);
    e.lot = text(p);
    e.slot = text(p);
    e.parkedAt = p.ConsumeIntegral<int64_t>();
    e.recallAt = p.ConsumeIntegral<int64_t>();
    e.changedAt = p.ConsumeIntegral<int64_t>();
    return e;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    xmlInitParser();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzedDataProvider p(data, size);
    std::string entity = text(p);
    uint64_t version = p.ConsumeIntegral<uint64_t>();

    std::vector<DialogInfoDialog> dialogs(p.ConsumeIntegralInRange<size_t>(0, 3));
    for (auto &d : dialogs)
        d = dialog(p);
    checkXml(
        buildDialogInfo(entity, version, p.ConsumeBool() ? DialogInfoState::Full : DialogInfoState::Partial, dialogs),
        "dialog-info");

    std::vector<ParkInfoEntry> entries(p.ConsumeIntegralInRange<size_t>(0, 3));
    for (auto &e : entries)
        e = parkInfo(p);
    checkXml(buildParkInfo(entity, version, entries), "park-info");

    std::optional<Identity> parked;
    if (p.ConsumeBool())
        parked = identity(p);
    checkXml(buildBroadWorksCallparkInfo(parked), "BroadWorks call-park info");

    int status = p.ConsumeIntegral<int>();
    std::string frag = buildSipfrag(status, text(p));
    if (frag.rfind("SIP/2.0 ", 0) != 0 || frag.find_first_of("\r\n") != frag.size() - 2)
        fail("bad sipfrag", frag);
    return 0;
}
