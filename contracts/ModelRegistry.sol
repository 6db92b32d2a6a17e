// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {IModelRegistry} from "./IModelRegistry.sol";

/**
 * @title ModelRegistry
 * @notice Provenance registry and license shop for quantized edge models (Hallmark).
 * @dev The interface, its events and its errors are documented in {IModelRegistry}.
 */
contract ModelRegistry is IModelRegistry, EIP712, Ownable2Step, ReentrancyGuardTransient, Nonces {
    /// @inheritdoc IModelRegistry
    uint16 public constant MAX_PLATFORM_FEE_BPS = 1_000;
    /// @inheritdoc IModelRegistry
    uint8 public constant MAX_LINEAGE_DEPTH = 8;
    /// @inheritdoc IModelRegistry
    uint64 public constant PERPETUAL = type(uint64).max;
    /// @inheritdoc IModelRegistry
    uint32 public constant MAX_SEATS_PER_PURCHASE = 10_000;

    /// @dev The whole of a payment in basis points: fees and upstream shares are parts of it.
    uint16 private constant _BPS = 10_000;
    /// @dev `licenseDuration` that sells perpetual licences.
    uint64 private constant _PERPETUAL_DURATION = 0;
    /// @dev The latest expiry a timed licence can reach: one below {PERPETUAL}, so the two never meet.
    uint64 private constant _LATEST_TIMED_EXPIRY = PERPETUAL - 1;
    /// @dev `minExpiresAt` of the three-argument {purchaseLicense}: any expiry will do.
    uint64 private constant _NO_MINIMUM_EXPIRY = 0;
    /// @dev Seats bought by the {purchaseLicense} overloads.
    uint32 private constant _ONE_SEAT = 1;
    /// @dev What a credit slot holds once opened and empty: a slot holds its payee's credit plus
    /// this, so it is never zero again and crediting it is an update (5,000 gas), never the
    /// creation of a slot (22,100). See {_credits}.
    uint256 private constant _OPEN = 1;

    bytes32 private constant _PUBLISH_VERSION_TYPEHASH = keccak256(
        "PublishVersion(bytes32 modelId,uint32 version,bytes32 rootDigest,bytes32 metadataDigest,uint256 deadline)"
    );
    bytes32 private constant _CREATE_MODEL_TYPEHASH = keccak256(
        "CreateModel(address vendor,bytes32 slugHash,uint96 price,uint64 licenseDuration,bytes32 parentId,uint16 upstreamBps,uint256 nonce,uint256 deadline)"
    );

    /**
     * @dev Layout chosen for the two hot paths: publishing a version reads and writes slot 0 only
     * (vendor + latestVersion); a purchase reads slot 0 and slot 1, and slot 2 only when the model
     * has a parent to pay.
     */
    struct Model {
        // slot 0
        address vendor;
        uint32 latestVersion;
        uint16 upstreamBps;
        uint8 depth;
        bool listed;
        // slot 1
        uint96 price;
        uint64 licenseDuration;
        // slot 2
        bytes32 parentId;
    }

    /**
     * @dev One slot, read and written once per purchase: adding the seat count to the expiry costs a
     * purchase no extra SSTORE. `seats` counts the devices the licensee may run the model on; a
     * licence never bought is (0, 0).
     */
    struct License {
        uint64 expiresAt;
        uint32 seats;
    }

    /// @dev Two slots written once per batch (root; count + time): anchoring costs the same for one
    /// receipt or four billion.
    struct ReceiptBatch {
        bytes32 root;
        uint32 count;
        uint64 anchoredAt;
    }

    /// @dev The platform fee, and the fees credited to its recipient since the recipient was set, in
    /// one slot: every purchase reads the fee and its recipient, and a purchase that pays a fee
    /// adds it here (one SSTORE on a slot already read, 2,900 gas) instead of reading and writing
    /// the recipient's credit slot (5,000). {creditOf} and {withdraw} count `accrued` as part of the
    /// recipient's credit; it moves into {_credits} when the recipient changes or would pass 2^80.
    struct PlatformFee {
        uint16 bps;
        address recipient;
        uint80 accrued;
    }

    /// @inheritdoc IModelRegistry
    mapping(bytes32 modelId => Model) public models;

    mapping(bytes32 modelId => mapping(uint32 version => bytes32 rootDigest)) private _versionDigests;
    mapping(bytes32 modelId => mapping(uint32 version => bool)) private _revoked;
    mapping(bytes32 modelId => mapping(address licensee => License)) private _licenses;
    /// @dev A payee's credit plus {_OPEN}, or zero for a slot never written. A vendor's slot is opened
    /// when it registers its first model and a withdrawal leaves it open: the first sale of a model
    /// (and every sale after a withdrawal) then updates a non-zero slot (5,000 gas) instead of
    /// creating one (22,100): the vendor pays the 20,000 once, at registration, not a model's first
    /// buyer. Read it through {_creditIn}.
    mapping(address payee => uint256) private _credits;

    /// @dev The platform fee (read by every purchase) and the fees accrued to its recipient.
    PlatformFee private _platformFee;
    /// @dev The latest receipt batch id.
    uint64 private _receiptBatchCount;

    mapping(uint64 batchId => ReceiptBatch) private _receiptBatches;
    mapping(address operator => bool) private _receiptOperators;

    modifier onlyVendor(bytes32 modelId) {
        _checkVendor(modelId, msg.sender);
        _;
    }

    constructor(address initialOwner, uint16 feeBps, address feeRecipient)
        EIP712("ModelRegistry", "1")
        Ownable(initialOwner)
    {
        _setPlatformFee(feeBps, feeRecipient);
    }

    // ------------------------------------------------------------------ models

    /// @inheritdoc IModelRegistry
    function createModel(bytes32 slugHash, uint96 price, uint64 licenseDuration, bytes32 parentId, uint16 upstreamBps)
        external
        returns (bytes32 modelId)
    {
        return _createModel(msg.sender, slugHash, price, licenseDuration, parentId, upstreamBps);
    }

    /// @inheritdoc IModelRegistry
    function createModelBySig(
        bytes32 slugHash,
        uint96 price,
        uint64 licenseDuration,
        bytes32 parentId,
        uint16 upstreamBps,
        address vendor,
        uint256 deadline,
        bytes calldata signature
    ) external returns (bytes32 modelId) {
        if (block.timestamp > deadline) revert ExpiredSignature(deadline);
        bytes32 structHash = keccak256(
            abi.encode(
                _CREATE_MODEL_TYPEHASH,
                vendor,
                slugHash,
                price,
                licenseDuration,
                parentId,
                upstreamBps,
                _useNonce(vendor),
                deadline
            )
        );
        address signer = ECDSA.recoverCalldata(_hashTypedDataV4(structHash), signature);
        if (signer != vendor) revert InvalidSigner(signer, vendor);
        return _createModel(vendor, slugHash, price, licenseDuration, parentId, upstreamBps);
    }

    /// @inheritdoc IModelRegistry
    function setTerms(bytes32 modelId, uint96 price, uint64 licenseDuration, bool listed)
        external
        onlyVendor(modelId)
    {
        Model storage model = models[modelId];
        model.price = price;
        model.licenseDuration = licenseDuration;
        model.listed = listed;
        emit TermsChanged(modelId, price, licenseDuration, listed);
    }

    // ---------------------------------------------------------------- versions

    /// @inheritdoc IModelRegistry
    function publishVersion(bytes32 modelId, bytes32 rootDigest, bytes32 metadataDigest)
        external
        returns (uint32 version)
    {
        Model storage model = _existingModel(modelId);
        if (model.vendor != msg.sender) revert NotModelVendor(modelId, msg.sender);
        version = model.latestVersion + 1;
        _publish(model, modelId, version, rootDigest, metadataDigest, msg.sender);
    }

    /// @inheritdoc IModelRegistry
    function publishVersionBySig(
        bytes32 modelId,
        uint32 version,
        bytes32 rootDigest,
        bytes32 metadataDigest,
        uint256 deadline,
        bytes calldata signature
    ) external {
        if (block.timestamp > deadline) revert ExpiredSignature(deadline);
        Model storage model = models[modelId];
        address vendor = model.vendor;
        uint32 latest = model.latestVersion;
        if (vendor == address(0)) revert UnknownModel(modelId);
        bytes32 structHash =
            keccak256(abi.encode(_PUBLISH_VERSION_TYPEHASH, modelId, version, rootDigest, metadataDigest, deadline));
        // from calldata: the signature is not copied to memory first
        address signer = ECDSA.recoverCalldata(_hashTypedDataV4(structHash), signature);
        if (signer != vendor) revert InvalidSigner(signer, vendor);
        uint32 expected = latest + 1;
        if (version != expected) revert UnexpectedVersion(expected, version);
        _publish(model, modelId, version, rootDigest, metadataDigest, signer);
    }

    /// @inheritdoc IModelRegistry
    function revokeVersion(bytes32 modelId, uint32 version, bytes32 reason) external onlyVendor(modelId) {
        if (version == 0 || version > models[modelId].latestVersion) revert UnknownVersion(modelId, version);
        if (_revoked[modelId][version]) revert VersionAlreadyRevoked(modelId, version);
        _revoked[modelId][version] = true;
        emit VersionRevoked(modelId, version, reason);
    }

    // ---------------------------------------------------------------- licences

    /// @inheritdoc IModelRegistry
    function purchaseLicense(bytes32 modelId, address licensee, uint256 maxPrice) external payable {
        _purchaseLicense(modelId, licensee, _ONE_SEAT, maxPrice, _NO_MINIMUM_EXPIRY, false);
    }

    /// @inheritdoc IModelRegistry
    function purchaseLicense(bytes32 modelId, address licensee, uint256 maxPrice, uint64 minExpiresAt)
        external
        payable
    {
        _purchaseLicense(modelId, licensee, _ONE_SEAT, maxPrice, minExpiresAt, false);
    }

    /// @inheritdoc IModelRegistry
    function purchaseLicenseSeats(
        bytes32 modelId,
        address licensee,
        uint32 seats,
        uint256 maxPrice,
        uint64 minExpiresAt
    ) external payable {
        if (seats == 0 || seats > MAX_SEATS_PER_PURCHASE) revert InvalidSeatCount(seats);
        _purchaseLicense(modelId, licensee, seats, maxPrice, minExpiresAt, true);
    }

    /// @inheritdoc IModelRegistry
    function withdraw() external nonReentrant {
        uint256 amount = _creditIn(_credits[msg.sender]);
        PlatformFee memory platform = _platformFee;
        if (msg.sender == platform.recipient && platform.accrued != 0) {
            amount += platform.accrued;
            _platformFee.accrued = 0;
        }
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        // left open, not zeroed: the next credit to this payee is an update, not a new slot
        _credits[msg.sender] = _OPEN;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert WithdrawFailed(msg.sender, amount);
    }

    // ------------------------------------------------------------------- owner

    /// @inheritdoc IModelRegistry
    function setPlatformFee(uint16 bps, address recipient) external onlyOwner {
        _setPlatformFee(bps, recipient);
    }

    /// @inheritdoc IModelRegistry
    function setReceiptOperator(address operator, bool allowed) external onlyOwner {
        _receiptOperators[operator] = allowed;
        emit ReceiptOperatorChanged(operator, allowed);
    }

    // ---------------------------------------------------------------- receipts

    /// @inheritdoc IModelRegistry
    function anchorReceipts(bytes32 root, uint32 count) external returns (uint64 batchId) {
        if (!_receiptOperators[msg.sender]) revert NotReceiptOperator(msg.sender);
        if (root == bytes32(0) || count == 0) revert InvalidReceiptBatch(root, count);
        batchId = _receiptBatchCount + 1;
        _receiptBatchCount = batchId;
        _receiptBatches[batchId] = ReceiptBatch({root: root, count: count, anchoredAt: uint64(block.timestamp)});
        emit ReceiptsAnchored(batchId, root, count);
    }

    // ------------------------------------------------------------------- views

    /// @inheritdoc IModelRegistry
    function versionDigest(bytes32 modelId, uint32 version) external view returns (bytes32) {
        return _versionDigests[modelId][version];
    }

    /// @inheritdoc IModelRegistry
    function isRevoked(bytes32 modelId, uint32 version) external view returns (bool) {
        return _revoked[modelId][version];
    }

    /// @inheritdoc IModelRegistry
    function latestVersion(bytes32 modelId) external view returns (uint32) {
        return models[modelId].latestVersion;
    }

    /// @inheritdoc IModelRegistry
    function licenseExpiry(bytes32 modelId, address licensee) external view returns (uint64) {
        return _licenses[modelId][licensee].expiresAt;
    }

    /// @inheritdoc IModelRegistry
    function hasLicense(bytes32 modelId, address licensee) external view returns (bool) {
        return _licenses[modelId][licensee].expiresAt > block.timestamp;
    }

    /// @inheritdoc IModelRegistry
    function licenseSeats(bytes32 modelId, address licensee) external view returns (uint32) {
        License memory license = _licenses[modelId][licensee];
        return license.expiresAt > block.timestamp ? license.seats : 0;
    }

    /// @inheritdoc IModelRegistry
    function licenseOf(bytes32 modelId, address licensee) external view returns (uint64 expiresAt, uint32 seats) {
        License memory license = _licenses[modelId][licensee];
        return (license.expiresAt, license.seats);
    }

    /// @inheritdoc IModelRegistry
    function receiptBatch(uint64 batchId) external view returns (bytes32 root, uint32 count, uint64 anchoredAt) {
        ReceiptBatch memory batch = _receiptBatches[batchId];
        return (batch.root, batch.count, batch.anchoredAt);
    }

    /// @inheritdoc IModelRegistry
    function receiptBatchCount() external view returns (uint64) {
        return _receiptBatchCount;
    }

    /// @inheritdoc IModelRegistry
    function isReceiptOperator(address operator) external view returns (bool) {
        return _receiptOperators[operator];
    }

    /// @inheritdoc IModelRegistry
    function creditOf(address payee) external view returns (uint256) {
        uint256 credit = _creditIn(_credits[payee]);
        PlatformFee memory platform = _platformFee;
        return payee == platform.recipient ? credit + platform.accrued : credit;
    }

    /// @inheritdoc IModelRegistry
    function platformFeeBps() external view returns (uint16) {
        return _platformFee.bps;
    }

    /// @inheritdoc IModelRegistry
    function platformFeeRecipient() external view returns (address) {
        return _platformFee.recipient;
    }

    /// @inheritdoc IModelRegistry
    function computeModelId(address vendor, bytes32 slugHash) public pure returns (bytes32) {
        return keccak256(abi.encode(vendor, slugHash));
    }

    /// @inheritdoc IModelRegistry
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc IModelRegistry
    function nonces(address owner) public view override(IModelRegistry, Nonces) returns (uint256) {
        return super.nonces(owner);
    }

    // ---------------------------------------------------------------- internal

    function _createModel(
        address vendor,
        bytes32 slugHash,
        uint96 price,
        uint64 licenseDuration,
        bytes32 parentId,
        uint16 upstreamBps
    ) private returns (bytes32 modelId) {
        modelId = computeModelId(vendor, slugHash);
        if (models[modelId].vendor != address(0)) revert ModelAlreadyExists(modelId);
        if (upstreamBps > _BPS) revert InvalidUpstreamBps(upstreamBps);
        uint8 depth;
        if (parentId == bytes32(0)) {
            // a root model has nobody upstream to pay
            if (upstreamBps != 0) revert InvalidUpstreamBps(upstreamBps);
        } else {
            uint8 parentDepth = _existingModel(parentId).depth;
            if (parentDepth >= MAX_LINEAGE_DEPTH) revert LineageTooDeep(parentId, parentDepth);
            depth = parentDepth + 1;
        }
        // the vendor's credit slot is opened here, once per vendor, so that no sale creates it
        if (_credits[vendor] == 0) _credits[vendor] = _OPEN;
        models[modelId] = Model({
            vendor: vendor,
            latestVersion: 0,
            upstreamBps: upstreamBps,
            depth: depth,
            listed: true,
            price: price,
            licenseDuration: licenseDuration,
            parentId: parentId
        });
        emit ModelCreated(modelId, vendor, parentId, slugHash, price, licenseDuration, upstreamBps);
    }

    function _publish(
        Model storage model,
        bytes32 modelId,
        uint32 version,
        bytes32 rootDigest,
        bytes32 metadataDigest,
        address signer
    ) private {
        if (rootDigest == bytes32(0)) revert ZeroDigest();
        model.latestVersion = version;
        _versionDigests[modelId][version] = rootDigest;
        emit VersionPublished(modelId, version, rootDigest, metadataDigest, signer);
    }

    /// @dev `seats` is 1..{MAX_SEATS_PER_PURCHASE} (checked by the callers); the price and its split
    /// are those of one sale of `price * seats` wei. `addToPerpetual` is false for the one-seat
    /// overloads, which keep refusing a held perpetual licence ({LicenseAlreadyPerpetual}).
    /// Each model slot is read once into locals (slot 0: vendor, upstreamBps, listed; slot 1: price,
    /// licenseDuration), so no field is read from storage twice.
    function _purchaseLicense(
        bytes32 modelId,
        address licensee,
        uint32 seats,
        uint256 maxPrice,
        uint64 minExpiresAt,
        bool addToPerpetual
    ) private {
        Model storage model = models[modelId];
        address vendor = model.vendor;
        uint16 upstreamBps = model.upstreamBps;
        if (vendor == address(0)) revert UnknownModel(modelId);
        if (!model.listed) revert NotListed(modelId);
        if (licensee == address(0)) revert InvalidLicensee(licensee);
        uint96 unitPrice = model.price;
        uint64 duration = model.licenseDuration;
        uint256 price;
        unchecked {
            // uint96 * uint32 < 2^128: cannot overflow
            price = uint256(unitPrice) * seats;
        }
        if (price > maxPrice) revert PriceAboveMax(price, maxPrice);
        if (msg.value < price) revert InsufficientPayment(price, msg.value);
        {
            (uint64 expiresAt, uint32 held) = _extendLicense(modelId, licensee, duration, seats, addToPerpetual);
            if (expiresAt < minExpiresAt) revert ExpiryBelowMinimum(expiresAt, minExpiresAt);
            emit LicensePurchased(modelId, licensee, msg.sender, price, expiresAt, held);
        }

        _splitPayment(modelId, vendor, upstreamBps, model, price);
        if (msg.value > price) {
            uint256 excess;
            unchecked {
                excess = msg.value - price;
            }
            _addCredit(msg.sender, excess);
            emit OverpaymentCredited(msg.sender, modelId, excess);
        }
    }

    /// @dev The licence after buying `seats` seats, read and written in one SSTORE. A held perpetual
    /// licence gains the seats (perpetual model, {purchaseLicenseSeats} only); a valid timed licence
    /// is renewed for at least the seats it holds, and every seat shares the new expiry; a licence
    /// never bought or expired starts again with `seats`.
    function _extendLicense(bytes32 modelId, address licensee, uint64 duration, uint32 seats, bool addToPerpetual)
        private
        returns (uint64 expiresAt, uint32 held)
    {
        License storage license = _licenses[modelId][licensee];
        uint64 current = license.expiresAt;
        uint32 seatsHeld = license.seats;
        if (current == PERPETUAL) {
            // more seats at a timed price would be perpetual seats sold as timed ones
            if (!addToPerpetual || duration != _PERPETUAL_DURATION) revert LicenseAlreadyPerpetual(modelId, licensee);
            uint256 total = uint256(seatsHeld) + seats;
            if (total > type(uint32).max) revert InvalidSeatCount(seats);
            expiresAt = PERPETUAL;
            held = uint32(total);
        } else {
            bool valid = current > block.timestamp;
            // a renewal covers every seat held: fewer would drop paid seats without saying so
            if (valid && seats < seatsHeld) revert SeatsBelowHeld(seatsHeld);
            held = seats;
            if (duration == _PERPETUAL_DURATION) {
                expiresAt = PERPETUAL;
            } else {
                // a renewal extends from the later of now and the current expiry: no paid time is lost
                uint64 start = valid ? current : uint64(block.timestamp);
                uint256 end = uint256(start) + duration;
                expiresAt = end > _LATEST_TIMED_EXPIRY ? _LATEST_TIMED_EXPIRY : uint64(end);
            }
        }
        license.expiresAt = expiresAt;
        license.seats = held;
    }

    /// @dev Platform fee first ({PlatformFeeCredited}), then the lineage cascade ({RoyaltyCredited}).
    /// Ancestor k (k = 1 is the parent) is credited its exact share floored:
    /// remaining * b0 * ... * b(k-1) * (10000 - bk) / 10000^(k+1), where bi is model i's upstreamBps
    /// and the last ancestor (upstreamBps 0, e.g. a root model) keeps all that reaches it. The bought
    /// model's vendor gets the rest, so it receives every wei of rounding dust and the credits sum
    /// to `price` exactly. `vendor` and `upstreamBps` are the bought model's, read by the caller.
    ///
    /// Unchecked arithmetic, bounds proven: `price` < 2^128 (uint96 * uint32), so `price * bps` and
    /// every numerator (remaining * 10000^9 at most, depth <= {MAX_LINEAGE_DEPTH}) stay far below
    /// 2^256; `fee` <= `price` and the shares paid upstream sum to at most `remaining` (each is a
    /// floor of a part of it), so no subtraction underflows.
    function _splitPayment(bytes32 modelId, address vendor, uint16 upstreamBps, Model storage model, uint256 price)
        private
    {
        PlatformFee memory platform = _platformFee;
        uint256 remaining;
        unchecked {
            uint256 fee = (price * platform.bps) / _BPS;
            if (fee != 0) {
                // its own event, not a RoyaltyCredited: readers tell the platform's share from a
                // vendor's without replaying fee history, at the same gas (same topics, same data)
                uint256 accrued = platform.accrued + fee;
                if (accrued > type(uint80).max) {
                    _addCredit(platform.recipient, accrued);
                    accrued = 0;
                }
                _platformFee = PlatformFee({bps: platform.bps, recipient: platform.recipient, accrued: uint80(accrued)});
                emit PlatformFeeCredited(platform.recipient, modelId, fee);
            }
            remaining = price - fee;

            uint256 paidUpstream;
            if (upstreamBps != 0 && remaining != 0) {
                uint256 numerator = remaining * upstreamBps;
                uint256 denominator = _BPS;
                bytes32 ancestorId = model.parentId;
                while (true) {
                    Model storage ancestor = models[ancestorId];
                    address ancestorVendor = ancestor.vendor;
                    uint16 ancestorBps = ancestor.upstreamBps;
                    uint256 share;
                    if (ancestorBps == 0) {
                        share = numerator / denominator;
                        _credit(ancestorVendor, ancestorId, share);
                        paidUpstream += share;
                        break;
                    }
                    share = (numerator * (_BPS - ancestorBps)) / (denominator * _BPS);
                    _credit(ancestorVendor, ancestorId, share);
                    paidUpstream += share;
                    numerator *= ancestorBps;
                    denominator *= _BPS;
                    ancestorId = ancestor.parentId;
                }
            }
            remaining -= paidUpstream;
        }
        _credit(vendor, modelId, remaining);
    }

    /// @dev Credits a model's vendor for a position in the lineage; zero amounts are not recorded.
    function _credit(address payee, bytes32 modelId, uint256 amount) private {
        if (amount == 0) return;
        _addCredit(payee, amount);
        emit RoyaltyCredited(payee, modelId, amount);
    }

    /// @dev Adds to a payee's credit slot, opening it ({_OPEN}) if it never was. Unchecked: every
    /// credited wei was paid in, so a credit stays below the ether supply, far below 2^256.
    function _addCredit(address payee, uint256 amount) private {
        uint256 slot = _credits[payee];
        uint256 opening;
        // branch-free, so the optimizer computes the mapping slot's hash once for the read and write
        assembly ("memory-safe") {
            opening := iszero(slot) // == _OPEN when the slot was never written
        }
        unchecked {
            _credits[payee] = slot + opening + amount;
        }
    }

    /// @dev The credit a {_credits} slot holds.
    function _creditIn(uint256 slot) private pure returns (uint256) {
        unchecked {
            return slot == 0 ? 0 : slot - _OPEN;
        }
    }

    /// @dev Sets the fee; the fees accrued for the recipient until now move into its credit slot.
    function _setPlatformFee(uint16 bps, address recipient) private {
        if (bps > MAX_PLATFORM_FEE_BPS) revert PlatformFeeTooHigh(bps, MAX_PLATFORM_FEE_BPS);
        if (recipient == address(0)) revert InvalidFeeRecipient(recipient);
        PlatformFee memory previous = _platformFee;
        if (previous.accrued != 0) _addCredit(previous.recipient, previous.accrued);
        _platformFee = PlatformFee({bps: bps, recipient: recipient, accrued: 0});
        emit PlatformFeeChanged(bps, recipient);
    }

    function _existingModel(bytes32 modelId) private view returns (Model storage model) {
        model = models[modelId];
        if (model.vendor == address(0)) revert UnknownModel(modelId);
    }

    function _checkVendor(bytes32 modelId, address caller) private view {
        address vendor = _existingModel(modelId).vendor;
        if (vendor != caller) revert NotModelVendor(modelId, caller);
    }
}
