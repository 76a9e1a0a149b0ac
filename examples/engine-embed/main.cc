// A program that embeds the Parkway park engine without the proxy: classify dial strings, park,
// list, retrieve. Shown in docs/engine.md; built and run by ctest so the page stays true.
#include <parkway/engine/engine.hh>
#include <parkway/engine/json.hh>

#include <cstdio>
#include <string>

namespace pe = parkway::engine;

int main(int argc, char** argv) try {
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) { // one optional argument, never a flag
        bool help = argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h");
        std::fprintf(help ? stdout : stderr, "usage: %s [DATABASE-FILE]   (default: in memory)\n", argv[0]);
        return help ? 0 : 2;
    }
    std::string db = argc > 1 ? argv[1] : ":memory:"; // a file path gives WAL durability
    pe::SystemClock clock;
    auto engine = pe::Engine::open(db, clock); // throws std::runtime_error naming the file on a bad DB

    // Hear about every committed change (your NOTIFYs, your event bus).
    engine->addListener([](const pe::ChangeEvent& ev) {
        std::printf("event %-16s call %lld on %s (version %lld)\n", pe::toString(ev.kind),
                    static_cast<long long>(ev.call.id), ev.targets.at(0).target.key().c_str(),
                    static_cast<long long>(ev.targets.at(0).version));
    });

    // Restart: re-arm a recall timer for every live call.
    for (const auto& c : engine->liveCalls())
        std::printf("live call %lld, recall due at %lld ms\n", static_cast<long long>(c.id),
                    static_cast<long long>(c.recallAt));

    // Alice (ext 100) transfers her caller to *68103: what does that dial string mean?
    pe::Classification what = engine->classify("example.com", "100", "*68103");
    if (what.action != pe::Action::Park) return 1;
    pe::ParkRequest park = pe::makeParkRequest(what, "example.com", "100");
    park.parkedUri = "sip:+15551234567@pstn.example.com";
    park.parkedDisplay = "Customer";
    park.requestKey = "a84b4c76e66710@pc33;cseq=1"; // a retransmission parks once
    pe::ParkResult parked = engine->park(park);
    if (!parked) {
        std::printf("park failed: %s (%s)\n", pe::toString(parked.error), parked.message.c_str());
        return 1;
    }

    pe::ListFilter filter;
    filter.domain = "example.com";
    std::printf("parked: %s\n", pe::toJson(engine->list(filter)).c_str());

    // Bob dials *88103: claim the call, connect it (your SIP work), then complete.
    pe::Classification pick = engine->classify("example.com", "200", "*88103");
    pe::CallResult claim = engine->claimRetrieve(pe::makeRetrieveRequest(pick, "example.com", "200"));
    if (!claim) return 1;
    bool connected = true; // re-INVITE the parked party with Bob's offer here
    pe::CallResult done = connected ? engine->completeRetrieve(claim.call.id) : engine->abortRetrieve(claim.call.id);
    if (!done) return 1;
    std::printf("retrieved call %lld parked on %s; %zu calls left\n", static_cast<long long>(done.call.id),
                done.call.extension.c_str(), engine->list(filter).size());
    return 0;
} catch (const std::exception& e) { // e.g. a database file that cannot be opened
    std::fprintf(stderr, "engine_embed: %s\n", e.what());
    return 1;
}
